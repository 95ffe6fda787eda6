//! Status codes, error messages and the panic guard every entry point uses.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::strings::{into_c_string, set_out};

/// What a call came to. Every function of this library that can fail
/// returns one; only [`MimiStatus::Ok`] means its out-parameters hold a
/// result. A lookup whose *answer* is bad (DNS failure, rejected records,
/// an input that is not an SII) is still `MIMI_STATUS_OK`: the outcome is
/// in the JSON (`"outcome": "dns_error"`, `"rejected"`, `"bad_input"`, …).
/// A status other than `MIMI_STATUS_OK` means the *call* was wrong or
/// could not be carried out.
///
/// The numeric values are part of the ABI and never change; new codes may
/// be added at the end, so treat an unknown value like
/// `MIMI_STATUS_INTERNAL_ERROR`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MimiStatus {
    /// The call succeeded.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL; the message
    /// names the argument.
    NullArgument = 1,
    /// A string argument was not valid UTF-8; the message names the
    /// argument and the byte offset.
    InvalidUtf8 = 2,
    /// The configuration JSON was not usable: malformed, an unknown field,
    /// or a value the resolver refuses (an unreadable trust store, a bad
    /// server spec, …). The message starts with the field it is about,
    /// e.g. `servers[1]: …` or `config: …` for the document as a whole.
    InvalidConfig = 3,
    /// An argument other than the configuration was unusable, e.g. a batch
    /// that is not a JSON array of strings or holds more than 100 000 SIIs.
    InvalidArgument = 4,
    /// A blocking call was made on one of the resolver's own threads (from
    /// inside a `mimi_resolver_lookup_async` callback), where waiting would
    /// stall the lookups it waits for. Use `mimi_resolver_lookup_async`
    /// there instead.
    CallbackThread = 5,
    /// The resolver's threads could not be started (the system is out of
    /// threads or memory).
    Runtime = 6,
    /// A bug in this library was caught (a Rust panic); the message says
    /// what. The handle stays usable.
    InternalError = 7,
}

/// Why a call failed: its status and a message for `*error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The status the call returns.
    pub status: MimiStatus,
    /// The message stored in `*error`.
    pub message: String,
}

impl CallError {
    /// An error with this status and message.
    pub fn new(status: MimiStatus, message: impl Into<String>) -> Self {
        CallError {
            status,
            message: message.into(),
        }
    }

    /// A NULL pointer given for the argument `name`.
    pub fn null(name: &str) -> Self {
        CallError::new(MimiStatus::NullArgument, format!("{name} is NULL"))
    }
}

/// Runs `body` with panics caught, and reports its result the C way:
/// `*error` (when `error` is not NULL) is set to NULL on success and to a
/// newly allocated message on failure.
///
/// # Safety
/// `error` must be NULL or valid for writing one pointer.
pub unsafe fn guard<F>(error: *mut *mut c_char, body: F) -> MimiStatus
where
    F: FnOnce() -> Result<(), CallError>,
{
    // SAFETY: the caller's contract.
    unsafe { set_out(error, std::ptr::null_mut()) };
    let result = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => Err(CallError::new(
            MimiStatus::InternalError,
            format!(
                "internal error (a bug in mimi-resolver-ffi): {}",
                panic_message(&*payload)
            ),
        )),
    };
    match result {
        Ok(()) => MimiStatus::Ok,
        Err(e) => {
            // Allocated only when the caller takes it: a message nobody
            // receives would leak. A message cannot fail to convert
            // (interior NULs are replaced), and a panic while allocating it
            // is caught too.
            if !error.is_null() {
                let message =
                    catch_unwind(|| into_c_string(&e.message)).unwrap_or(std::ptr::null_mut());
                // SAFETY: the caller's contract.
                unsafe { set_out(error, message) };
            }
            e.status
        }
    }
}

/// The text of a panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strings::{mimi_string_free, take_string};

    #[test]
    fn a_panic_becomes_an_internal_error_with_its_message() {
        let mut error = std::ptr::null_mut();
        // SAFETY: a valid out-pointer.
        let status = unsafe { guard(&mut error, || panic!("boom {}", 42)) };
        assert_eq!(status, MimiStatus::InternalError);
        // SAFETY: set by guard.
        let message = unsafe { take_string(error) };
        assert!(message.contains("boom 42"), "{message}");
    }

    #[test]
    fn success_clears_the_error_and_failure_may_have_no_error_pointer() {
        let mut error = std::ptr::dangling_mut::<c_char>();
        // SAFETY: a valid out-pointer.
        assert_eq!(unsafe { guard(&mut error, || Ok(())) }, MimiStatus::Ok);
        assert!(error.is_null());
        // SAFETY: NULL error pointers are allowed.
        let status = unsafe {
            guard(std::ptr::null_mut(), || {
                Err(CallError::new(MimiStatus::InvalidArgument, "x"))
            })
        };
        assert_eq!(status, MimiStatus::InvalidArgument);
        // SAFETY: NULL is allowed.
        unsafe { mimi_string_free(std::ptr::null_mut()) };
    }
}
