//! Boxes on spokes, as the hub's box service keeps them: the row before
//! the spoke is asked, a failed create leaving none, a box kept while its
//! spoke is away, and a spoke's list trusted only for its own boxes.
//!
//! A FAKE spoke: lying, failing or vanishing on cue is not something a
//! real spoke does when asked. The real hub-and-spoke processes are in
//! `crates/paddock/tests/spoke_boxes.rs`.

use std::sync::Arc;

use paddock_core::remote::{
    FailureKind, RemoteCall, RemoteFailure, RemoteReply, SpokeCallError, SpokeLoad, Spokes,
};
use paddock_core::{BoxFuture, BoxView, CoreError, CreatedBox};
use paddock_store::{BoxState, Store};
use parking_lot::Mutex;

use crate::fake_engine::{FakeEngine, new_box, paddock};

/// What the one fake spoke, `gpu-1`, does.
#[derive(Default)]
struct FakeSpoke {
    connected: Mutex<bool>,
    /// The boxes it holds.
    holds: Mutex<Vec<BoxView>>,
    /// Boxes it claims besides.
    claims: Mutex<Vec<BoxView>>,
    refuse_creates: Mutex<bool>,
    /// Goes away in the middle of the next create.
    vanish_in_create: Mutex<bool>,
    load: Mutex<u32>,
    /// `[spokes] boxes_here = false`.
    off_the_hub: Mutex<bool>,
    /// A create waits for this before the spoke has the box (and says
    /// so on `create_started`).
    pause_create: Mutex<Option<Arc<tokio::sync::Notify>>>,
    create_started: tokio::sync::Notify,
}

fn view(id: &str, project: &str) -> BoxView {
    BoxView {
        box_id: id.into(),
        project: project.into(),
        image: "busybox".into(),
        description: String::new(),
        state: BoxState::Ready,
        error: None,
        exit_code: None,
        created_at: "2026-12-03T00:00:00Z".into(),
        expires_at: None,
        container: format!("c-{id}"),
        runtime: None,
        read_only: false,
        usage: None,
        spoke: None,
        unreachable: false,
        shield: None,
        shield_until_ms: None,
    }
}

impl Spokes for FakeSpoke {
    fn boxes_here(&self) -> bool {
        !*self.off_the_hub.lock()
    }

    fn loads(&self) -> Vec<SpokeLoad> {
        if !*self.connected.lock() {
            return Vec::new();
        }
        vec![SpokeLoad {
            name: "gpu-1".into(),
            boxes: *self.load.lock(),
            max_boxes: 8,
        }]
    }

    fn call<'a>(
        &'a self,
        spoke: &'a str,
        call: RemoteCall,
    ) -> BoxFuture<'a, Result<RemoteReply, SpokeCallError>> {
        Box::pin(async move {
            if spoke != "gpu-1" || !*self.connected.lock() {
                return Err(SpokeCallError::Unreachable(spoke.into()));
            }
            let not_found = || {
                SpokeCallError::Failed(RemoteFailure {
                    kind: FailureKind::NotFound,
                    message: "no such box".into(),
                })
            };
            match call {
                RemoteCall::Create { request } => {
                    if *self.refuse_creates.lock() {
                        return Err(SpokeCallError::Failed(RemoteFailure {
                            kind: FailureKind::Invalid,
                            message: "no image busybox:nope".into(),
                        }));
                    }
                    let id = request.box_id.unwrap();
                    let pause = self.pause_create.lock().clone();
                    if let Some(release) = pause {
                        self.create_started.notify_one();
                        release.notified().await;
                    }
                    // A spoke that says the box is someone else's changes
                    // nothing: the hub's record decides.
                    let made = view(&id, "someone-else");
                    self.holds.lock().push(made.clone());
                    if std::mem::take(&mut *self.vanish_in_create.lock()) {
                        *self.connected.lock() = false;
                        return Err(SpokeCallError::Unreachable(spoke.into()));
                    }
                    Ok(RemoteReply::Created(Box::new(CreatedBox {
                        view: made,
                        activation_url: None,
                    })))
                }
                RemoteCall::Get { box_id } => self
                    .holds
                    .lock()
                    .iter()
                    .find(|v| v.box_id == box_id)
                    .map(|v| RemoteReply::View(Box::new(v.clone())))
                    .ok_or_else(not_found),
                RemoteCall::List => {
                    let mut all = self.holds.lock().clone();
                    all.extend(self.claims.lock().iter().cloned());
                    Ok(RemoteReply::Views(all))
                }
                RemoteCall::Exec { .. } => Ok(RemoteReply::Exec(paddock_core::ExecResult {
                    stdout: "ran\n".into(),
                    stderr: String::new(),
                    exit_code: 0,
                    truncated: false,
                })),
                RemoteCall::Logs { .. } => Ok(RemoteReply::Logs("log\n".into())),
                RemoteCall::RenewActivation { box_id } => Ok(RemoteReply::ActivationUrl(format!(
                    "https://spoke.test/activate/{box_id}"
                ))),
                // Terminals are the real link's (tests/spoke_terminal.rs).
                RemoteCall::OpenTerminal { .. }
                | RemoteCall::ResizeTerminal { .. }
                | RemoteCall::SignalTerminal { .. }
                | RemoteCall::TerminalExit { .. } => Err(SpokeCallError::Failed(RemoteFailure {
                    kind: FailureKind::Invalid,
                    message: "no terminals on this fake".into(),
                })),
                RemoteCall::Stop { box_id } | RemoteCall::Start { box_id } => {
                    let mut shown = self
                        .holds
                        .lock()
                        .iter()
                        .find(|v| v.box_id == box_id)
                        .cloned()
                        .ok_or_else(not_found)?;
                    shown.state = BoxState::Stopped;
                    Ok(RemoteReply::View(Box::new(shown)))
                }
                RemoteCall::Shield { state, .. } => {
                    Ok(RemoteReply::Shield(paddock_core::remote::ShieldSet {
                        state,
                        until_ms: None,
                    }))
                }
                RemoteCall::Destroy { box_id } => {
                    let mut holds = self.holds.lock();
                    let before = holds.len();
                    holds.retain(|v| v.box_id != box_id);
                    if holds.len() == before {
                        return Err(not_found());
                    }
                    Ok(RemoteReply::Done)
                }
            }
        })
    }
}

fn hub() -> (Arc<Store>, Arc<paddock_core::BoxService>, Arc<FakeSpoke>) {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(FakeEngine::default());
    let boxes = paddock(&store, &engine);
    let spoke = Arc::new(FakeSpoke::default());
    *spoke.connected.lock() = true;
    boxes.set_spokes(spoke.clone());
    (store, boxes, spoke)
}

/// Dates every spoke row back, so a reconcile sees none as a create
/// still on its way (rows written in the very millisecond of the list are
/// kept, and a test is faster than that).
fn written_long_ago(store: &Store) {
    for row in store.list_spoke_boxes().unwrap() {
        store
            .update_spoke_box(&row.id, &row.spoke, &row.view_json, 1)
            .unwrap();
    }
}

fn on_gpu_1(id: &str) -> paddock_core::CreateBox {
    paddock_core::CreateBox {
        spoke: Some("gpu-1".into()),
        ..new_box(id)
    }
}

#[tokio::test]
async fn a_box_on_a_spoke_is_the_hubs_record_and_the_spokes_work() {
    let (store, boxes, spoke) = hub();
    let created = boxes.create(on_gpu_1("far")).await.unwrap();
    assert_eq!(created.view.spoke.as_deref(), Some("gpu-1"));
    assert_eq!(
        created.view.project, "journal",
        "the hub's record, not the spoke's word"
    );
    assert_eq!(store.get_spoke_box("far").unwrap().unwrap().spoke, "gpu-1");
    assert!(store.get_box("far").unwrap().is_none(), "no local row");
    assert_eq!(boxes.exec("far", "true").await.unwrap().stdout, "ran\n");
    assert_eq!(boxes.logs("far", None).await.unwrap(), "log\n");
    // A new activation link is the spoke's to make (its page).
    assert_eq!(
        boxes.renew_activation_link("far").await.unwrap(),
        "https://spoke.test/activate/far"
    );
    assert!(matches!(
        boxes.published_ports("far"),
        Err(CoreError::OnSpoke { spoke, .. }) if spoke == "gpu-1"
    ));
    // Power and the shield go to the spoke too.
    assert_eq!(boxes.stop("far").await.unwrap().state, BoxState::Stopped);
    assert_eq!(boxes.get("far").unwrap().state, BoxState::Stopped);
    let set = boxes
        .shield_on_spoke("far", "block", None, "test")
        .await
        .unwrap();
    assert_eq!(set.state, "block");
    assert_eq!(boxes.spoke_of("far").unwrap().as_deref(), Some("gpu-1"));
    // The id is taken wherever the box runs.
    assert!(matches!(
        boxes.create(new_box("far")).await,
        Err(CoreError::Conflict(_))
    ));
    boxes.destroy("far").await.unwrap();
    assert!(store.get_spoke_box("far").unwrap().is_none());
    assert!(spoke.holds.lock().is_empty());
}

#[tokio::test]
async fn a_create_the_spoke_refuses_leaves_no_row_and_one_cut_short_is_settled_by_its_list() {
    let (store, boxes, spoke) = hub();
    *spoke.refuse_creates.lock() = true;
    assert!(matches!(
        boxes.create(on_gpu_1("nope")).await,
        Err(CoreError::Invalid(_))
    ));
    assert!(store.list_spoke_boxes().unwrap().is_empty());
    *spoke.refuse_creates.lock() = false;

    // The link goes mid-create: the row stays (the box may be there).
    *spoke.vanish_in_create.lock() = true;
    assert!(matches!(
        boxes.create(on_gpu_1("cut")).await,
        Err(CoreError::SpokeUnreachable(_))
    ));
    assert!(store.get_spoke_box("cut").unwrap().is_some());
    let shown = boxes.get("cut").unwrap();
    assert!(shown.unreachable, "{shown:?}");
    assert!(matches!(
        boxes.destroy("cut").await,
        Err(CoreError::SpokeUnreachable(_))
    ));
    assert!(store.get_spoke_box("cut").unwrap().is_some(), "kept");

    // Back, it lists the box: kept, with the spoke's view.
    *spoke.connected.lock() = true;
    written_long_ago(&store);
    boxes.reconcile_spoke("gpu-1").await.unwrap();
    let back = boxes.get_with_usage("cut").await.unwrap();
    assert_eq!((back.state, back.unreachable), (BoxState::Ready, false));

    // Had it not made the box, the row would go.
    spoke.holds.lock().clear();
    written_long_ago(&store);
    boxes.reconcile_spoke("gpu-1").await.unwrap();
    assert!(store.get_spoke_box("cut").unwrap().is_none());
}

#[tokio::test]
async fn a_spoke_that_lies_about_its_boxes_takes_nothing_in() {
    let (store, boxes, spoke) = hub();
    boxes.create(new_box("here")).await.unwrap();
    boxes.create(on_gpu_1("mine")).await.unwrap();
    // It claims the hub's own box, a box nobody placed, and its real one
    // under another project.
    spoke
        .claims
        .lock()
        .extend([view("here", "journal"), view("stray", "beta")]);
    written_long_ago(&store);
    boxes.reconcile_spoke("gpu-1").await.unwrap();
    let all = boxes.list_with_usage().await.unwrap();
    let mut seen: Vec<(String, Option<String>, String)> = all
        .iter()
        .map(|v| (v.box_id.clone(), v.spoke.clone(), v.project.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("here".into(), None, "journal".into()),
            ("mine".into(), Some("gpu-1".into()), "journal".into()),
        ]
    );
    assert!(store.get_spoke_box("stray").unwrap().is_none());
    assert_eq!(
        store.get_box("here").unwrap().unwrap().state,
        BoxState::Ready
    );
    // The hub's own start-up reconcile leaves the spoke's box alone.
    boxes.reconcile().await.unwrap();
    assert!(store.get_spoke_box("mine").unwrap().is_some());
}

#[tokio::test]
async fn an_unnamed_create_goes_to_the_less_loaded_side() {
    let (store, boxes, spoke) = hub();
    boxes.create(new_box("local-1")).await.unwrap();
    // This machine: 1 of 32; the spoke: 0 of 8.
    let placed = boxes.create(new_box("next")).await.unwrap();
    assert_eq!(placed.view.spoke.as_deref(), Some("gpu-1"));
    *spoke.load.lock() = 8;
    let placed = boxes.create(new_box("then")).await.unwrap();
    assert_eq!(placed.view.spoke, None, "a full spoke takes nothing");
    assert_eq!(store.list_spoke_boxes().unwrap().len(), 1);
}

#[tokio::test]
async fn a_hub_that_runs_no_boxes_itself_places_every_one_on_a_spoke() {
    let (store, boxes, spoke) = hub();
    *spoke.off_the_hub.lock() = true;
    let placed = boxes.create(new_box("away")).await.unwrap();
    assert_eq!(placed.view.spoke.as_deref(), Some("gpu-1"));
    let here = paddock_core::CreateBox {
        spoke: Some("local".into()),
        ..new_box("here")
    };
    assert!(matches!(
        boxes.create(here).await,
        Err(CoreError::Invalid(_))
    ));
    *spoke.load.lock() = 8;
    assert!(matches!(
        boxes.create(new_box("nowhere")).await,
        Err(CoreError::Conflict(_))
    ));
    assert!(store.get_box("here").unwrap().is_none());
    assert!(store.get_box("nowhere").unwrap().is_none());
}

#[tokio::test]
async fn a_list_taken_while_a_create_is_on_its_way_forgets_nothing() {
    let (store, boxes, spoke) = hub();
    let release = Arc::new(tokio::sync::Notify::new());
    *spoke.pause_create.lock() = Some(release.clone());
    let creating = tokio::spawn({
        let boxes = boxes.clone();
        async move { boxes.create(on_gpu_1("slow")).await }
    });
    spoke.create_started.notified().await;
    // The spoke's list does not have it yet; the row stays all the same.
    written_long_ago(&store);
    boxes.reconcile_spoke("gpu-1").await.unwrap();
    assert!(store.get_spoke_box("slow").unwrap().is_some());
    release.notify_one();
    let made = creating.await.unwrap().unwrap();
    assert_eq!(made.view.spoke.as_deref(), Some("gpu-1"));
    assert!(store.get_spoke_box("slow").unwrap().is_some());
}
