//! The built-in default city (in progress).
