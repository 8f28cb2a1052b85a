//! One test per reported bug, named after the behaviour it pins (as
//! ripgrep's tests/regression.rs). Grouped by area.

mod cli;
mod data;
mod physics;
mod plugin;
mod scenario;
