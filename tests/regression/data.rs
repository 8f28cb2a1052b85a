//! Regressions of the data paths: sweeps, resume, raw output, merge, output folders.
