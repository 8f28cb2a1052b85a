//! Regressions of firmware plugins: path resolution, containment of crashes and hangs.
