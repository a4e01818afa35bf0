//! Helpers for the end-to-end tests: start the local platform, talk to it.
