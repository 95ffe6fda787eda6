//! Delivery of asynchronous lookups to a C callback, exactly once.
//!
//! An event loop in C waits for its callback (on a condition variable, a
//! pipe, an eventfd); a lookup whose callback never came would hang it, and
//! one that came twice would free its `user_data` twice. [`Pending`]
//! therefore calls the callback exactly once: with the lookup's report, or,
//! when the lookup never finishes because the resolver was freed first (its
//! runtime drops unfinished tasks) or a bug unwound through it, from its
//! `Drop` with a `bad_input` report saying the lookup was cancelled.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mimi_resolver::Report;

use crate::strings::into_c_string;

/// The callback of `mimi_resolver_lookup_async`: `user_data` as given, and
/// the lookup's JSON (the object `mimi-resolve lookup --json` prints),
/// which the callback owns and must free with `mimi_string_free`. `json`
/// is never NULL. (Nullable as a type so that a NULL function pointer is a
/// detected error rather than undefined behaviour.)
pub type MimiLookupCallback = Option<extern "C" fn(user_data: *mut c_void, json: *mut c_char)>;

/// The callback once checked to be present.
pub type CallbackFn = extern "C" fn(user_data: *mut c_void, json: *mut c_char);

/// A lookup that has not yet called back.
pub struct Pending {
    callback: CallbackFn,
    user_data: UserData,
    input: String,
    with_endpoints: bool,
    done: bool,
}

/// The caller's `user_data`: an opaque pointer the contract lets us carry
/// to another thread (the header says so).
struct UserData(*mut c_void);

// SAFETY: the C contract of `mimi_resolver_lookup_async` requires
// `user_data` to be usable from the resolver's threads; this library never
// dereferences it.
unsafe impl Send for UserData {}

impl Pending {
    /// A lookup of `input` that will call `callback(user_data, json)`.
    pub fn new(
        callback: CallbackFn,
        user_data: *mut c_void,
        input: &str,
        with_endpoints: bool,
    ) -> Self {
        Pending {
            callback,
            user_data: UserData(user_data),
            input: input.to_owned(),
            with_endpoints,
            done: false,
        }
    }

    /// Calls back with `report`.
    pub fn finish(mut self, report: &Report) {
        self.deliver(report);
    }

    fn deliver(&mut self, report: &Report) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // Rendering cannot reasonably panic; if it does, the callback still
        // gets a report rather than nothing.
        let json = catch_unwind(AssertUnwindSafe(|| {
            into_c_string(&report.to_json(self.with_endpoints).to_string())
        }))
        .unwrap_or_else(|_| {
            into_c_string(r#"{"outcome":"internal_error","verified":[],"rejected":[],"errors":["internal error (a bug in mimi-resolver-ffi): rendering the report panicked"]}"#)
        });
        (self.callback)(self.user_data.0, json);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            let report = Report::BadInput {
                input: std::mem::take(&mut self.input),
                canonical: None,
                error: "the lookup was cancelled: the resolver was freed before it finished".into(),
            };
            self.deliver(&report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

    extern "C" fn record(user_data: *mut c_void, json: *mut c_char) {
        assert_eq!(user_data as usize, 7);
        // SAFETY: the callback owns `json`.
        let s = unsafe { crate::strings::take_string(json) };
        SEEN.lock().unwrap().push(s);
    }

    #[test]
    fn a_dropped_lookup_calls_back_once_as_cancelled_and_a_finished_one_once() {
        drop(Pending::new(
            record,
            7 as *mut c_void,
            "alice@example.com",
            false,
        ));
        let report = Report::BadInput {
            input: "x".into(),
            canonical: None,
            error: "not an SII".into(),
        };
        Pending::new(record, 7 as *mut c_void, "x", false).finish(&report);
        let seen = std::mem::take(&mut *SEEN.lock().unwrap());
        assert_eq!(seen.len(), 2, "{seen:?}");
        let cancelled: serde_json::Value = serde_json::from_str(&seen[0]).unwrap();
        assert_eq!(cancelled["outcome"], "bad_input");
        assert_eq!(cancelled["input"], "alice@example.com");
        assert!(cancelled["errors"][0]
            .as_str()
            .unwrap()
            .contains("cancelled"));
        let done: serde_json::Value = serde_json::from_str(&seen[1]).unwrap();
        assert_eq!(done["errors"][0], "not an SII");
    }
}
