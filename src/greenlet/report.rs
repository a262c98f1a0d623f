//! Reports on stderr for conditions that cannot be returned to anyone.

/// Writes one line to stderr for conditions that cannot be returned to anyone
/// (a greenlet that refuses to die, a destructor panicking in cleanup).
pub(crate) fn report(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{message}");
}

/// The message of a panic payload when it is a string, for reports.
pub(crate) fn describe_panic(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}
