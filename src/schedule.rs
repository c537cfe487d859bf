//! `spec.schedule`: whether a window is open at an instant, and when that changes next.
//! Placeholder, being written.
