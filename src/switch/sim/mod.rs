//! The built-in switch simulator (the embedded default switch).
