//! mesobench integration tests (one binary, as ripgrep does).

mod cli;
mod closed_forms;
mod compare;
mod conservation;
mod convergence;
mod firmware;
mod fit;
mod fmu;
mod manual;
mod registry;
mod regression;
mod sensitivity;
mod snapshots;
mod statistics;
mod stepping;
mod sweep;
mod trends;
mod tune;
mod util;
mod validity;
