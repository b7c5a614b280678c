//! The store on PostgreSQL. The `postgres` client blocks on a runtime of
//! its own, which must not run inside paddock's, so one thread owns the
//! connection and the store's calls are handed to it (the store takes
//! one call at a time anyway, as with SQLite). A connection that is lost
//! is made again for the next call; a call on the lost one fails as
//! "unavailable", and a transaction it was in fails as a whole, never
//! half-applied on a new connection.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, NoTls, Statement};

use crate::db::{Row, Value};
use crate::{Result, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a connection to a database that went silent is found dead — a
/// cut that closes nothing (a pulled cable, a machine powered off)
/// otherwise leaves it open for TCP's two hours idle, or a quarter of an
/// hour with data unacknowledged. On both ends: here, so a call fails
/// and the connection is made again; on the server (per session), so the
/// session of a hub that died with its machine ends, and with it the
/// leader's lock, which another hub may then take.
/// Idle this long, the other end is probed...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// ...this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and given up after this many unanswered probes (10 + 3 × 5 = 25 s).
const KEEPALIVE_PROBES: u32 = 3;
/// Data sent and not acknowledged for this long fails the connection.
const UNACKED_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a cut connection goes unnoticed on the server's side:
/// the leader's lease must be shorter (see `leader`).
pub(crate) const SERVER_NOTICES_A_CUT: Duration = Duration::from_secs(
    KEEPALIVE_IDLE.as_secs() + KEEPALIVE_INTERVAL.as_secs() * KEEPALIVE_PROBES as u64,
);

enum Op {
    Execute,
    Query,
    Batch,
}

enum Done {
    Changed(u64),
    Rows(Vec<Row>),
    Ran,
}

struct Job {
    op: Op,
    sql: String,
    params: Vec<Value>,
    reply: mpsc::SyncSender<Result<Done>>,
}

/// `url` as a connection's settings (its error never repeats the URL,
/// which holds a password).
pub(crate) fn settings(url: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| StoreError::PostgresUrl(e.to_string()))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    // Unless the URL says otherwise.
    if !url.contains("keepalives") {
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_PROBES);
    }
    if !url.contains("tcp_user_timeout") {
        config.tcp_user_timeout(UNACKED_TIMEOUT);
    }
    Ok(config)
}

/// Connects, and asks the server to find this session dead as soon as
/// this end would (best effort: a server before PostgreSQL 12 has no
/// `tcp_user_timeout`, and a pooler may not pass settings on; the
/// server's own defaults then apply).
pub(crate) fn connect(config: &postgres::Config) -> std::result::Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    let settings = [
        ("tcp_keepalives_idle", KEEPALIVE_IDLE.as_secs()),
        ("tcp_keepalives_interval", KEEPALIVE_INTERVAL.as_secs()),
        ("tcp_keepalives_count", u64::from(KEEPALIVE_PROBES)),
        ("tcp_user_timeout", UNACKED_TIMEOUT.as_millis() as u64),
    ];
    // One at a time: a setting one server lacks leaves the others set.
    for (name, value) in settings {
        if let Err(e) = client.batch_execute(&format!("SET {name} = {value}")) {
            tracing::debug!(setting = name, error = %e, "the server did not take a session's keepalive setting");
        }
    }
    Ok(client)
}

/// The store's handle on its PostgreSQL thread.
pub(crate) struct PgLink {
    jobs: mpsc::Sender<Job>,
}

impl PgLink {
    /// Connects to `url` (a `postgres://` URL) now, so a wrong address or
    /// password stops the start with its reason.
    pub(crate) fn connect(config: postgres::Config) -> Result<Self> {
        // Connected on the thread that keeps the connection: the client's
        // runtime may not start on one of paddock's.
        let (jobs, incoming) = mpsc::channel();
        let (connected, first) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("paddock-store-pg".into())
            .spawn(move || {
                let client = match connect(&config) {
                    Ok(client) => client,
                    Err(e) => {
                        let _ = connected.send(Err(StoreError::from(e)));
                        return;
                    }
                };
                let _ = connected.send(Ok(()));
                let worker = Worker {
                    config,
                    client: Some(client),
                    statements: HashMap::new(),
                    transaction: Transaction::None,
                };
                worker.run(incoming);
            })
            .map_err(|e| StoreError::PostgresUrl(format!("cannot start its thread: {e}")))?;
        first.recv().map_err(|_| StoreError::PostgresGone)??;
        Ok(Self { jobs })
    }

    fn call(&self, op: Op, sql: &str, params: &[Value]) -> Result<Done> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            op,
            sql: sql.to_owned(),
            params: params.to_vec(),
            reply,
        };
        self.jobs.send(job).map_err(|_| StoreError::PostgresGone)?;
        answer.recv().map_err(|_| StoreError::PostgresGone)?
    }

    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<usize> {
        match self.call(Op::Execute, sql, params)? {
            Done::Changed(n) => Ok(n as usize),
            _ => Err(StoreError::PostgresGone),
        }
    }

    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self.call(Op::Query, sql, params)? {
            Done::Rows(rows) => Ok(rows),
            _ => Err(StoreError::PostgresGone),
        }
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        self.call(Op::Batch, sql, &[]).map(|_| ())
    }
}

/// Where the connection is with respect to a transaction.
#[derive(PartialEq, Eq)]
enum Transaction {
    None,
    Open,
    /// The connection was lost inside one: every statement fails until
    /// the caller's ROLLBACK (or COMMIT, which fails too).
    Lost,
}

struct Worker {
    config: postgres::Config,
    client: Option<Client>,
    /// Prepared statements of this connection, by the store's SQL.
    statements: HashMap<String, Statement>,
    transaction: Transaction,
}

impl Worker {
    fn run(mut self, incoming: mpsc::Receiver<Job>) {
        for job in incoming {
            let done = self.serve(&job);
            let _ = job.reply.send(done);
        }
    }

    fn serve(&mut self, job: &Job) -> Result<Done> {
        let word = matches!(job.op, Op::Batch).then(|| job.sql.trim().to_ascii_uppercase());
        let ends = matches!(word.as_deref(), Some("COMMIT" | "ROLLBACK"));
        if self.transaction == Transaction::Lost {
            if ends {
                self.transaction = Transaction::None;
            }
            return Err(StoreError::PostgresLostTransaction);
        }
        let done = self.attempt(job);
        match word.as_deref() {
            Some("BEGIN") if done.is_ok() => self.transaction = Transaction::Open,
            _ if ends => self.transaction = Transaction::None,
            _ => {}
        }
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.statements.clear();
            if self.transaction == Transaction::Open {
                self.transaction = Transaction::Lost;
            }
        }
        done
    }

    fn attempt(&mut self, job: &Job) -> Result<Done> {
        if self.client.is_none() {
            self.client = Some(connect(&self.config)?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::PostgresGone);
        };
        if let Op::Batch = job.op {
            client.batch_execute(&job.sql)?;
            return Ok(Done::Ran);
        }
        let statement = match self.statements.get(&job.sql) {
            Some(statement) => statement.clone(),
            None => {
                let statement = client.prepare(&dialect(&job.sql))?;
                self.statements.insert(job.sql.clone(), statement.clone());
                statement
            }
        };
        let params: Vec<&(dyn ToSql + Sync)> = job
            .params
            .iter()
            .map(|v| v as &(dyn ToSql + Sync))
            .collect();
        match job.op {
            Op::Execute => Ok(Done::Changed(client.execute(&statement, &params)?)),
            _ => {
                let rows = client.query(&statement, &params)?;
                rows.iter().map(row).collect::<Result<_>>().map(Done::Rows)
            }
        }
    }
}

/// The store's SQL as PostgreSQL takes it: `?N` → `$N`, and SQLite's
/// `IFNULL` (which a shipped index names, so queries must too) →
/// `COALESCE`. Nothing inside a quoted string is touched.
pub(crate) fn dialect(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quoted = false;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && c == '?' {
            out.push('$');
            rest = &rest[1..];
            continue;
        } else if !quoted && rest.len() >= 7 && rest[..7].eq_ignore_ascii_case("IFNULL(") {
            out.push_str("COALESCE(");
            rest = &rest[7..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn row(r: &postgres::Row) -> Result<Row> {
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
            Type::INT4 => r
                .try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => r
                .try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => r
                .try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i)?.map(Value::Real),
            Type::FLOAT4 => r
                .try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into())),
            Type::BYTEA => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                r.try_get::<_, Option<String>>(i)?.map(Value::Text)
            }
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "column {} is of type {ty}, which the store does not read",
                    column.name()
                )));
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

type SqlError = Box<dyn std::error::Error + Sync + Send>;

/// A value is written as whatever the statement's parameter is: the
/// store's integers are i64, a column may be narrower or a boolean.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, SqlError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => Err(format!("an integer cannot be a parameter of type {ty}").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::dialect;

    #[test]
    fn parameters_and_ifnull_are_rewritten_outside_strings_only() {
        assert_eq!(
            dialect("SELECT a FROM t WHERE b = ?1 AND IFNULL(c, -1) = ?12 AND d = 'x?1 ifnull('"),
            "SELECT a FROM t WHERE b = $1 AND COALESCE(c, -1) = $12 AND d = 'x?1 ifnull('"
        );
    }
}
