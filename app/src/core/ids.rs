//! Identifiers: a type prefix and a time-ordered UUIDv7, so ids sort by creation and
//! keyset pagination on `id` is stable (`txn_0192…`, `auth_0192…`).

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
