//! Regressions of the plant: stability, conservation, parameters reaching the plant.
