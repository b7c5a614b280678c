//! The journal's promise, step by step: whatever engine call of a create
//! or a destroy fails, paddock leaves no container or network the store
//! does not account for (no orphan) and no row whose work is not finished
//! by the next start (no ghost).
//!
//! A FAKE engine: failing Docker on demand at an exact step is not
//! something a real engine can be made to do from a test. The real-engine
//! tests of the same promise (an interrupted create, a SIGKILLed paddock,
//! Docker down) stay in `crates/paddock/tests/`; this one covers every
//! step in turn, hermetically, in milliseconds.

mod create_destroy;
mod fake_engine;
mod lifecycle;
mod pools;
mod spokes;
