#![cfg(feature = "gui")]
//! The studio driven through egui_kittest (clicks, keys, drags, snapshots on lavapipe) and the
//! scripted soak (see `tests/cli/main.rs` for why one binary).

#[path = "../common/mod.rs"]
mod common;

mod assist_tools;
mod compare;
mod follow;
mod formats;
mod labeller;
mod layout;
mod paint;
mod reliability;
mod smart_region;
mod soak;
mod support;
mod train;
mod transfer;
