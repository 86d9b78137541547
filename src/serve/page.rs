//! The live page at `/`: one self-contained HTML file (styles and script inline, no CDN), built
//! into the binary, that reads `/api/` every few seconds.

/// The page.
pub(super) const PAGE: &str = include_str!("page.html");
