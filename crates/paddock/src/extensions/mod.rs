//! The capabilities that ride on boxes, side by side: each a
//! `BoxExtension` that equips a box before its container starts, guards it
//! once it runs, and hears of its networks and its end. The crates behind
//! them (`paddock-egress`, `paddock-gate`) know nothing of boxes; this is
//! where they meet paddock's box service.

pub mod egress;
pub mod gate;
