//! Backup hooks: commands the agent runs in selected Pods around a backup's volume
//! snapshots, so an application is quiesced (flushed, locked, frozen) while its volumes
//! are captured and released right after, before any data is copied.
//!
//! Two sources, one shape ([`HookCommand`]): the hooks of a backup definition
//! ([`BackupHook`], optionally from a [`HookTemplate`]) and the Pod annotations Velero
//! defined (`pre.hook.backup.velero.io/command`, ...; [`annotation_hooks`]), so
//! manifests written for Velero keep working. The same keys under `arca.dev` win over
//! Velero's.
//!
//! What ran is recorded as [`HookOutcome`]s, on the job's messages and on the recovery
//! point.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, validate};

/// At most this many hooks on one definition.
pub const MAX_HOOKS: usize = 20;
/// At most this many arguments in one command, each at most [`MAX_ARG_BYTES`].
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;
/// A hook command's time limit when none is given (Velero's default too).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;
/// At most this many outcomes are kept on a recovery point; the rest are counted.
pub const MAX_HOOK_OUTCOMES: usize = 50;
/// The end of a hook's output that is kept (stdout, then stderr), in bytes.
pub const MAX_HOOK_OUTPUT: usize = 1024;
/// How long the `mysql` template's read lock lasts at most when no post hook releases
/// it (the agent died between the two): the application is never left locked.
pub const MYSQL_LOCK_SECONDS: u32 = 600;

/// What a failed hook command does to the backup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// The backup fails (a pre hook: before any snapshot is taken).
    #[default]
    Fail,
    /// The backup goes on and ends PARTIAL, the failure listed as a warning.
    Continue,
}

/// Ready-made commands for common stateful applications, run in their container with
/// the environment their official images define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookTemplate {
    /// `CHECKPOINT` before the snapshot: the dirty pages are on disk, so the
    /// crash-consistent snapshot starts up with little WAL to replay.
    Postgresql,
    /// `FLUSH TABLES WITH READ LOCK` held across the snapshot by a client left running
    /// in the container (released by the post hook, or after [`MYSQL_LOCK_SECONDS`]).
    Mysql,
    /// `db.fsyncLock()` / `db.fsyncUnlock()`.
    Mongodb,
    /// `fsfreeze` of `freezePath` (the container needs `CAP_SYS_ADMIN`).
    Fsfreeze,
}

/// A hook of a backup definition: in every running Pod it selects, `pre` runs before
/// the volumes are snapshotted and `post` right after (whatever the snapshots did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupHook {
    /// Names the hook in outcomes; unique in its definition.
    pub name: String,
    /// Namespaces whose Pods it runs in; empty: every namespace the backup selects.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod label selector terms, ANDed; empty: every Pod.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The container to run in; absent: the Pod's first.
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub template: Option<HookTemplate>,
    /// With `template` (or alone): freeze this mount around the snapshot, after the
    /// template's pre command and before its post command.
    #[serde(default)]
    pub freeze_path: Option<String>,
    /// The command before the snapshots, as argv (no shell unless you name one); it
    /// replaces the template's.
    #[serde(default)]
    pub pre: Vec<String>,
    /// The command after the snapshots; it replaces the template's.
    #[serde(default)]
    pub post: Vec<String>,
    /// Each command's time limit.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub on_error: OnError,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

/// One command to run in one container, as resolved from a hook or an annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookCommand {
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub on_error: OnError,
}

/// A shell command line as argv (templates need the container's environment).
fn shell(script: String) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// `'text'` for a POSIX shell.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl HookTemplate {
    /// (pre, post) scripts of the template.
    fn scripts(self) -> (Option<String>, Option<String>) {
        match self {
            HookTemplate::Postgresql => (
                Some(
                    r#"PGUSER="${POSTGRES_USER:-postgres}" psql -v ON_ERROR_STOP=1 -d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" -c CHECKPOINT"#
                        .into(),
                ),
                None,
            ),
            HookTemplate::Mysql => (
                Some(format!(
                    concat!(
                        r#"export MYSQL_PWD="${{MYSQL_ROOT_PASSWORD:-$MYSQL_PASSWORD}}"; "#,
                        r#"nohup mysql -uroot -e "FLUSH TABLES WITH READ LOCK; DO SLEEP({secs})" >/tmp/arca-hook-mysql.log 2>&1 & "#,
                        r#"echo $! >/tmp/arca-hook-mysql.pid; "#,
                        // The pre hook succeeds only once the lock is held.
                        r#"for i in $(seq 1 100); do "#,
                        r#"mysql -uroot -N -e "SELECT COUNT(*) FROM information_schema.processlist WHERE INFO LIKE 'DO SLEEP({secs})%'" | grep -q '^[1-9]' && exit 0; "#,
                        r#"kill -0 "$(cat /tmp/arca-hook-mysql.pid)" 2>/dev/null || {{ cat /tmp/arca-hook-mysql.log; exit 1; }}; sleep 0.1; done; exit 1"#
                    ),
                    secs = MYSQL_LOCK_SECONDS
                )),
                // Ending the client ends its session, which releases the lock.
                Some(r#"kill "$(cat /tmp/arca-hook-mysql.pid)" && rm -f /tmp/arca-hook-mysql.pid"#.into()),
            ),
            HookTemplate::Mongodb => {
                let mongosh = r#"mongosh --quiet ${MONGO_INITDB_ROOT_USERNAME:+-u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin}"#;
                (
                    Some(format!(r#"{mongosh} --eval "db.fsyncLock()""#)),
                    Some(format!(r#"{mongosh} --eval "db.fsyncUnlock()""#)),
                )
            }
            HookTemplate::Fsfreeze => (None, None),
        }
    }
}

impl BackupHook {
    /// Validates under the JSON path `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        validate::dns_label(&format!("{field}.name"), &self.name)?;
        for (i, ns) in self.namespaces.iter().enumerate() {
            validate::dns_label(&format!("{field}.namespaces[{i}]"), ns)?;
        }
        validate::labels(&format!("{field}.labels"), &self.labels)?;
        if let Some(c) = &self.container {
            validate::dns_label(&format!("{field}.container"), c)?;
        }
        for (name, argv) in [("pre", &self.pre), ("post", &self.post)] {
            command(&format!("{field}.{name}"), argv)?;
        }
        if let Some(path) = &self.freeze_path
            && (!path.starts_with('/') || path.len() > MAX_ARG_BYTES || path.chars().any(char::is_control))
        {
            return Err(Error::invalid(
                format!("{field}.freezePath"),
                "must be an absolute path in the container",
            ));
        }
        if self.template == Some(HookTemplate::Fsfreeze) && self.freeze_path.is_none() {
            return Err(Error::invalid(
                format!("{field}.freezePath"),
                "the fsfreeze template needs the mount path to freeze",
            ));
        }
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&self.timeout_seconds) {
            return Err(Error::invalid(
                format!("{field}.timeoutSeconds"),
                format!("must be 1 to {MAX_TIMEOUT_SECONDS}"),
            ));
        }
        let (pre, post) = self.commands();
        if pre.is_none() && post.is_none() {
            return Err(Error::invalid(
                format!("{field}.pre"),
                "give a pre or a post command, a template or a freezePath",
            ));
        }
        Ok(())
    }

    /// The pre and post commands: the given ones, else the template's, with the freeze
    /// of `freezePath` inside them.
    pub fn commands(&self) -> (Option<HookCommand>, Option<HookCommand>) {
        let (mut pre, mut post) = self.template.map(HookTemplate::scripts).unwrap_or_default();
        if let Some(path) = &self.freeze_path {
            let path = quoted(path);
            let freeze = format!("fsfreeze --freeze {path}");
            pre = Some(match pre {
                Some(p) => format!("{p} && {freeze}"),
                None => freeze,
            });
            // Unfrozen first: the application's own release may need to write.
            let thaw = format!("fsfreeze --unfreeze {path}");
            post = Some(match post {
                Some(p) => format!("{thaw}; {p}"),
                None => thaw,
            });
        }
        let resolve = |given: &Vec<String>, script: Option<String>| {
            let argv = if given.is_empty() {
                script.map(shell)?
            } else {
                given.clone()
            };
            Some(HookCommand {
                argv,
                timeout: Duration::from_secs(u64::from(self.timeout_seconds)),
                on_error: self.on_error,
            })
        };
        (resolve(&self.pre, pre), resolve(&self.post, post))
    }
}

fn command(field: &str, argv: &[String]) -> Result<()> {
    if argv.len() > MAX_ARGS {
        return Err(Error::invalid(field, format!("at most {MAX_ARGS} arguments")));
    }
    if argv.first().is_some_and(|a| a.trim().is_empty()) {
        return Err(Error::invalid(format!("{field}[0]"), "the program must not be empty"));
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.len() > MAX_ARG_BYTES || arg.contains('\0') {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("arguments are at most {MAX_ARG_BYTES} bytes, without NUL"),
            ));
        }
    }
    Ok(())
}

/// A definition's hooks: each valid, names unique, at most [`MAX_HOOKS`].
pub fn validate_hooks(field: &str, hooks: &[BackupHook]) -> Result<()> {
    validate_list(field, hooks, |h| &h.name, BackupHook::validate)
}

/// Hooks of either kind: at most [`MAX_HOOKS`], each valid, their names unique.
fn validate_list<H>(
    field: &str,
    hooks: &[H],
    name: impl Fn(&H) -> &String,
    validate: impl Fn(&H, &str) -> Result<()>,
) -> Result<()> {
    if hooks.len() > MAX_HOOKS {
        return Err(Error::invalid(field, format!("at most {MAX_HOOKS} hooks")));
    }
    for (i, hook) in hooks.iter().enumerate() {
        validate(hook, &format!("{field}[{i}]"))?;
        if hooks[..i].iter().any(|h| name(h) == name(hook)) {
            return Err(Error::invalid(
                format!("{field}[{i}].name"),
                format!("{:?} names another hook too", name(hook)),
            ));
        }
    }
    Ok(())
}

/// How long a restore hook waits, by default, for its Pods to be Ready.
pub const DEFAULT_WAIT_SECONDS: u32 = 300;

/// A command run in the Pods of restored workloads once they are Ready (after the
/// resources and volumes are restored): re-index, warm a cache, re-register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHook {
    /// Names the hook in outcomes; unique in its restore.
    pub name: String,
    /// The recovery point's namespaces (before any renaming) whose workloads it runs in;
    /// empty: all that are restored.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Pod label selector terms, ANDed, against the workload's Pod template.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Absent: the Pod's first container.
    #[serde(default)]
    pub container: Option<String>,
    pub command: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// How long to wait for the workload's Pods to be Ready before running it.
    #[serde(default = "default_wait")]
    pub wait_seconds: u32,
    #[serde(default)]
    pub on_error: OnError,
}

fn default_wait() -> u32 {
    DEFAULT_WAIT_SECONDS
}

impl RestoreHook {
    pub fn validate(&self, field: &str) -> Result<()> {
        validate::dns_label(&format!("{field}.name"), &self.name)?;
        for (i, ns) in self.namespaces.iter().enumerate() {
            validate::dns_label(&format!("{field}.namespaces[{i}]"), ns)?;
        }
        validate::labels(&format!("{field}.labels"), &self.labels)?;
        if let Some(c) = &self.container {
            validate::dns_label(&format!("{field}.container"), c)?;
        }
        command(&format!("{field}.command"), &self.command)?;
        if self.command.is_empty() {
            return Err(Error::invalid(format!("{field}.command"), "give the command to run"));
        }
        for (name, value) in [
            ("timeoutSeconds", self.timeout_seconds),
            ("waitSeconds", self.wait_seconds),
        ] {
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&value) {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    format!("must be 1 to {MAX_TIMEOUT_SECONDS}"),
                ));
            }
        }
        Ok(())
    }

    pub fn command(&self) -> HookCommand {
        HookCommand {
            argv: self.command.clone(),
            timeout: Duration::from_secs(u64::from(self.timeout_seconds)),
            on_error: self.on_error,
        }
    }
}

/// A restore's hooks: each valid, names unique, at most [`MAX_HOOKS`].
pub fn validate_restore_hooks(field: &str, hooks: &[RestoreHook]) -> Result<()> {
    validate_list(field, hooks, |h| &h.name, RestoreHook::validate)
}

/// What a Pod template's restore hook annotations ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreAnnotationHook {
    /// `None`: the Pod's first container.
    pub container: Option<String>,
    pub command: HookCommand,
    /// How long to wait for the Pods to be Ready.
    pub wait: Duration,
}

/// A restore hook asked for by annotations on a workload's Pod template (Velero's
/// `post.hook.restore.velero.io/…`, or the same under `hook.restore.arca.dev`); `None`
/// when the Pod asks for none.
pub fn restore_annotation_hook(
    annotations: &BTreeMap<String, String>,
) -> std::result::Result<Option<RestoreAnnotationHook>, String> {
    let get = |key: &str| {
        ["post.hook.restore.velero.io", "post.hook.restore.arca.dev"]
            .iter()
            .rev()
            .find_map(|domain| {
                let name = format!("{domain}/{key}");
                annotations.get(&name).map(|v| (name, v.trim().to_owned()))
            })
    };
    let Some((name, text)) = get("command") else {
        return Ok(None);
    };
    let argv = parse_command(&text).map_err(|e| format!("annotation {name}: {e}"))?;
    let duration = |key: &str, default: u32| match get(key) {
        Some((name, t)) => parse_duration(&t).map_err(|e| format!("annotation {name}: {e}")),
        None => Ok(Duration::from_secs(u64::from(default))),
    };
    let timeout = duration("exec-timeout", DEFAULT_TIMEOUT_SECONDS)?;
    let wait = duration("wait-timeout", DEFAULT_WAIT_SECONDS)?;
    let on_error = on_error_annotation(get("on-error"))?;
    let container = get("container").map(|(_, c)| c).filter(|c| !c.is_empty());
    Ok(Some(RestoreAnnotationHook {
        container,
        command: HookCommand {
            argv,
            timeout,
            on_error,
        },
        wait,
    }))
}

/// The prefixes of the hook annotations, weakest first (a key under a later one wins).
pub const ANNOTATION_DOMAINS: [&str; 2] = ["hook.backup.velero.io", "hook.backup.arca.dev"];

/// What a Pod's backup hook annotations ask for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnnotationHooks {
    /// `None`: the Pod's first container.
    pub container: Option<String>,
    pub pre: Option<HookCommand>,
    pub post: Option<HookCommand>,
}

/// The hooks a Pod's annotations ask for. `Err` names the annotation that cannot be read.
pub fn annotation_hooks(annotations: &BTreeMap<String, String>) -> std::result::Result<AnnotationHooks, String> {
    let get = |phase: &str, key: &str| {
        ANNOTATION_DOMAINS.iter().rev().find_map(|domain| {
            let name = format!("{phase}.{domain}/{key}");
            annotations.get(&name).map(|v| (name, v.trim().to_owned()))
        })
    };
    let mut container = None;
    let mut commands = [None, None];
    for (slot, phase) in ["pre", "post"].into_iter().enumerate() {
        let Some((name, text)) = get(phase, "command") else {
            continue;
        };
        let argv = parse_command(&text).map_err(|e| format!("annotation {name}: {e}"))?;
        let timeout = match get(phase, "timeout") {
            Some((name, t)) => parse_duration(&t).map_err(|e| format!("annotation {name}: {e}"))?,
            None => Duration::from_secs(u64::from(DEFAULT_TIMEOUT_SECONDS)),
        };
        let on_error = on_error_annotation(get(phase, "on-error"))?;
        if let Some((_, c)) = get(phase, "container")
            && !c.is_empty()
        {
            // One container per Pod: the pre hook's, else the post hook's.
            container.get_or_insert(c);
        }
        commands[slot] = Some(HookCommand {
            argv,
            timeout,
            on_error,
        });
    }
    let [pre, post] = commands;
    Ok(AnnotationHooks { container, pre, post })
}

/// An `on-error` annotation (its name and value): `Fail` (also when absent) or `Continue`.
fn on_error_annotation(annotation: Option<(String, String)>) -> std::result::Result<OnError, String> {
    match annotation {
        None => Ok(OnError::Fail),
        Some((_, v)) if v.eq_ignore_ascii_case("fail") => Ok(OnError::Fail),
        Some((_, v)) if v.eq_ignore_ascii_case("continue") => Ok(OnError::Continue),
        Some((name, v)) => Err(format!("annotation {name}: {v:?} is neither Continue nor Fail")),
    }
}

/// Velero's command annotation: a JSON array of arguments, or one program name.
fn parse_command(text: &str) -> std::result::Result<Vec<String>, String> {
    let argv = if text.starts_with('[') {
        serde_json::from_str::<Vec<String>>(text).map_err(|e| format!("not a JSON array of strings: {e}"))?
    } else {
        vec![text.to_owned()]
    };
    command("command", &argv).map_err(|e| e.to_string())?;
    if argv.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(argv)
}

/// A Go duration as Velero's annotations write it: `30s`, `1m30s`, `2h`, `500ms`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30s, 1m30s or 2h");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() || total > Duration::from_secs(u64::from(MAX_TIMEOUT_SECONDS)) {
        return Err(format!("must be more than 0 and at most {MAX_TIMEOUT_SECONDS}s"));
    }
    Ok(total)
}

/// Before or after the snapshots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookPhase {
    Pre,
    Post,
    /// In a restored workload's Pod, once it is Ready.
    Restore,
}

/// How one hook command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum HookResult {
    Succeeded,
    /// It exited non-zero, or could not be started (no such container, exec refused).
    Failed,
    /// It ran past its time limit (it may still be running in the container).
    TimedOut,
}

/// One hook command as it ran in one Pod.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookOutcome {
    /// The definition hook's name, or `annotations`.
    pub hook: String,
    pub phase: HookPhase,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub command: Vec<String>,
    pub result: HookResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    pub on_error: OnError,
    /// The end of its output (stdout, then stderr), at most [`MAX_HOOK_OUTPUT`] bytes,
    /// or why it could not run.
    #[serde(default)]
    pub output: String,
}

impl HookOutcome {
    pub fn succeeded(&self) -> bool {
        self.result == HookResult::Succeeded
    }

    /// One line for the job's messages.
    pub fn line(&self) -> String {
        let how = match (self.result, self.exit_code) {
            (HookResult::Succeeded, _) => "succeeded".to_owned(),
            (HookResult::TimedOut, _) => "timed out".to_owned(),
            (HookResult::Failed, Some(code)) => format!("failed (exit code {code})"),
            (HookResult::Failed, None) => "failed".to_owned(),
        };
        let mark = match (self.result, self.on_error) {
            (HookResult::Succeeded, _) => "",
            (_, OnError::Fail) => "FAILED: ",
            (_, OnError::Continue) => "WARNING: ",
        };
        let phase = match self.phase {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
            HookPhase::Restore => "restore",
        };
        let mut line = format!(
            "{mark}{phase} hook {} in {}/{} ({}) {how} in {} ms",
            self.hook, self.namespace, self.pod, self.container, self.duration_ms
        );
        if !self.succeeded() && !self.output.is_empty() {
            line.push_str(": ");
            line.push_str(&crate::model::cut_to_bytes(self.output.trim().to_owned(), 300));
        }
        line
    }

    /// Cut to what a recovery point keeps.
    pub fn bounded(mut self) -> Self {
        self.hook = crate::model::cut_to_bytes(self.hook, 128);
        self.namespace = crate::model::cut_to_bytes(self.namespace, 320);
        self.pod = crate::model::cut_to_bytes(self.pod, 320);
        self.container = crate::model::cut_to_bytes(self.container, 320);
        // At most 1 KiB of command in all: 50 outcomes stay under 150 KB.
        let mut room = MAX_HOOK_OUTPUT;
        self.command = self
            .command
            .into_iter()
            .map(|a| crate::model::cut_to_bytes(a, 256))
            .take_while(|a| {
                room = room.saturating_sub(a.len());
                room > 0
            })
            .collect();
        self.output = tail_bytes(&self.output, MAX_HOOK_OUTPUT);
        self
    }
}

/// The last `max` bytes of `text` at a character boundary, marked with "…" when cut.
pub fn tail_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut at = text.len() - max + '…'.len_utf8();
    while !text.is_char_boundary(at) {
        at += 1;
    }
    format!("…{}", &text[at..])
}

#[cfg(test)]
mod tests;
