//! Deterministic simulation of the ledger and payments (being written).
