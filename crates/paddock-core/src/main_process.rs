//! What runs as a box's main process.
//!
//! A box lives until it is destroyed, whatever its image was made for.
//! Shell images (Debian's `bash`, busybox's `sh`) and language images
//! (`python3`, `node`) run an interactive program that, with no terminal,
//! reads end-of-file and ends at once; `docker run -d IMAGE` would stop
//! there, and people write `docker run -d IMAGE sleep infinity` instead. A
//! box does that for them: when the image's command is such a program, or
//! it has none, the box's main process is a keeper that sleeps until the
//! box is stopped. An image that runs a service keeps its own command (a
//! box whose service dies says so: `exited`, with the code).

use paddock_docker::ImageCommand;

/// The keeper: `sleep` is in every image that has a shell (coreutils,
/// busybox); 2^31-1 seconds because busybox's `sleep` has no `infinity`.
/// Under Docker's init it ends at the first SIGTERM, so a stop is quick.
pub(crate) const KEEPER: [&str; 2] = ["sleep", "2147483647"];

/// Programs that, given no script and no terminal, read stdin and end.
const INTERACTIVE: &[&str] = &[
    "sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "python", "python2",
    "python3", "ipython", "node", "bun", "deno", "irb", "ruby", "perl", "php", "lua", "R", "julia",
    "ghci", "erl", "iex", "jshell", "pwsh", "scala",
];

/// Options that leave such a program interactive (no script named).
const INTERACTIVE_FLAGS: &[&str] = &["-i", "-l", "-il", "-li", "--login", "--interactive"];

/// How the container's entrypoint and command are set. `None` keeps the
/// image's; an empty entrypoint clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MainProcess {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
}

impl MainProcess {
    fn image_own() -> Self {
        Self {
            entrypoint: None,
            cmd: None,
        }
    }

    fn exactly(argv: Vec<String>) -> Self {
        Self {
            entrypoint: Some(Vec::new()),
            cmd: Some(argv),
        }
    }

    /// Whether the box's main process is paddock's keeper rather than
    /// something the image or the configuration chose.
    #[cfg(test)]
    pub fn is_keeper(&self) -> bool {
        self.cmd.as_deref().is_some_and(|c| c == KEEPER)
    }
}

fn keeper() -> Vec<String> {
    KEEPER.iter().map(|s| (*s).to_owned()).collect()
}

/// The main process for a box: the configured command when there is one
/// (a profile's, else `[boxes] command`), else the image's own unless it
/// would end at once.
pub(crate) fn choose(configured: &[String], image: &ImageCommand) -> MainProcess {
    if !configured.is_empty() {
        return MainProcess::exactly(configured.to_vec());
    }
    let argv: Vec<&String> = image.entrypoint.iter().chain(&image.cmd).collect();
    if argv.is_empty() || is_interactive(&argv) {
        return MainProcess::exactly(keeper());
    }
    // `ENTRYPOINT ["docker-entrypoint.sh"]` with `CMD ["node"]`: the
    // wrapper runs whatever it is given, so give it the keeper.
    let cmd: Vec<&String> = image.cmd.iter().collect();
    if !image.entrypoint.is_empty() && !cmd.is_empty() && is_interactive(&cmd) {
        return MainProcess {
            entrypoint: None,
            cmd: Some(keeper()),
        };
    }
    MainProcess::image_own()
}

fn is_interactive(argv: &[&String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let name = program.rsplit('/').next().unwrap_or(program);
    let known = INTERACTIVE.contains(&name) || versioned_python(name);
    known && args.iter().all(|a| INTERACTIVE_FLAGS.contains(&a.as_str()))
}

/// `python3.12` and the like.
fn versioned_python(name: &str) -> bool {
    name.strip_prefix("python")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageCommand {
        ImageCommand {
            entrypoint: entrypoint.iter().map(|s| (*s).to_owned()).collect(),
            cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn shell_and_language_images_get_the_keeper() {
        // As the common images on Docker Hub declare themselves.
        for (name, shape) in [
            ("debian", image(&[], &["bash"])),
            ("ubuntu", image(&[], &["/bin/bash"])),
            ("busybox", image(&[], &["sh"])),
            ("alpine", image(&[], &["/bin/sh"])),
            ("python", image(&[], &["python3"])),
            ("python 3.12", image(&[], &["python3.12"])),
            ("a login shell", image(&[], &["/bin/bash", "-l"])),
            ("no command at all", image(&[], &[])),
            ("an entrypoint shell", image(&["/bin/sh"], &[])),
        ] {
            let chosen = choose(&[], &shape);
            assert!(chosen.is_keeper(), "{name}: {chosen:?}");
            assert_eq!(chosen.entrypoint, Some(vec![]), "{name}");
        }
    }

    #[test]
    fn a_wrapper_entrypoint_is_kept_and_given_the_keeper() {
        let node = image(&["docker-entrypoint.sh"], &["node"]);
        let chosen = choose(&[], &node);
        assert_eq!(chosen.entrypoint, None);
        assert!(chosen.is_keeper());
    }

    #[test]
    fn services_and_scripts_keep_their_own_command() {
        for shape in [
            image(&[], &["/bin/sleep", "2147483647"]),
            image(&[], &["/bin/sh", "-c", "exit 3"]),
            image(&[], &["python3", "server.py"]),
            image(&["nginx", "-g", "daemon off;"], &[]),
            image(&["/usr/bin/tini", "--"], &["my-agent"]),
        ] {
            assert_eq!(choose(&[], &shape), MainProcess::image_own(), "{shape:?}");
        }
    }

    #[test]
    fn a_configured_command_replaces_everything() {
        let configured = vec!["my-agent".to_owned(), "--serve".to_owned()];
        let chosen = choose(&configured, &image(&["tini"], &["bash"]));
        assert_eq!(chosen, MainProcess::exactly(configured));
        assert!(!chosen.is_keeper());
    }
}
