//! Cross-validation of settings over labelled traces (filled in below).
