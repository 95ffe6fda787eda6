//! Strings across the boundary: C strings in, library-owned strings out.
//!
//! Every `char *` this library hands out was allocated by Rust and must be
//! given back to [`mimi_string_free`]; `free(3)` would use the wrong
//! allocator. Every `const char *` it takes is only read during the call.

use std::ffi::{c_char, CStr, CString};

use crate::status::{CallError, MimiStatus};

/// Frees a string this library returned (a JSON result or an error
/// message). `s` may be NULL (nothing happens). Freeing a string twice, or
/// one this library did not allocate, is undefined behaviour, as with
/// `free(3)`.
///
/// # Safety
/// `s` is NULL or a string returned by this library and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn mimi_string_free(s: *mut c_char) {
    if !s.is_null() {
        // A drop cannot panic, and there is no body to guard.
        // SAFETY: the caller's contract: `s` came from `CString::into_raw`.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// The library's version (`"0.1.0"`), a static string: do not free it.
#[no_mangle]
pub extern "C" fn mimi_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => panic!("the version has no interior NUL"),
        };
    VERSION.as_ptr()
}

/// A newly allocated C copy of `s` for the caller to free with
/// [`mimi_string_free`]. An interior NUL (which JSON never holds: it is
/// escaped as `\u0000`) is replaced by U+FFFD rather than truncating the
/// text silently.
pub fn into_c_string(s: &str) -> *mut c_char {
    let c = CString::new(s)
        .unwrap_or_else(|_| CString::new(s.replace('\0', "\u{fffd}")).expect("no NUL left"));
    c.into_raw()
}

/// Reads the C string argument `name`: NULL and invalid UTF-8 are errors
/// naming the argument.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for the call.
pub unsafe fn read_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, CallError> {
    if ptr.is_null() {
        return Err(CallError::null(name));
    }
    // SAFETY: the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|e| {
        CallError::new(
            MimiStatus::InvalidUtf8,
            format!("{name}: not UTF-8 at byte {}", e.valid_up_to()),
        )
    })
}

/// Stores `value` in `*out` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for writing one value.
pub unsafe fn set_out<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the caller's contract.
        unsafe { out.write(value) };
    }
}

/// Takes back a string this library returned (tests only need this).
///
/// # Safety
/// As [`mimi_string_free`]; `s` must not be NULL.
#[cfg(test)]
pub unsafe fn take_string(s: *mut c_char) -> String {
    assert!(!s.is_null());
    // SAFETY: the caller's contract.
    unsafe { CString::from_raw(s) }.into_string().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_non_utf8_arguments_are_errors_naming_them() {
        // SAFETY: NULL is allowed.
        let e = unsafe { read_str(std::ptr::null(), "sii") }.unwrap_err();
        assert_eq!(e, CallError::new(MimiStatus::NullArgument, "sii is NULL"));
        let bad = b"ab\xffc\0";
        // SAFETY: NUL-terminated.
        let e = unsafe { read_str(bad.as_ptr().cast(), "sii") }.unwrap_err();
        assert_eq!(e.status, MimiStatus::InvalidUtf8);
        assert_eq!(e.message, "sii: not UTF-8 at byte 2");
    }

    #[test]
    fn returned_strings_round_trip_and_interior_nuls_are_visible() {
        // SAFETY: freshly allocated by into_c_string.
        assert_eq!(unsafe { take_string(into_c_string("a\0b")) }, "a\u{fffd}b");
        // SAFETY: static, NUL-terminated.
        let v = unsafe { CStr::from_ptr(mimi_version()) }.to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}
