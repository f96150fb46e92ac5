//! Security tests (being written).
