//! C ABI (skeleton).
