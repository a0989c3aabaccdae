//! The console: a JSON API (docs/api.md) and a web UI over the lake's rollup tables, served by
//! the collector (`serve --console ADDR`, or `console --data DIR` read-only).
//!
//! Stages: `query` (the query language → [`query::Expr`], fields declared once in `fields`) →
//! `eval` (a query over a day's `ip_daily` batch, as columns `col` reads) → `pages` (one module
//! per page: the figures of a [`view::View`]) over `catalog` (the lake's days, cached) → `api`
//! (JSON and CSV) and `web` (the embedded UI, security headers) → `server` (listener, tokens,
//! TLS).
pub mod api;
pub mod args;
pub mod catalog;
pub mod col;
pub mod error;
pub mod eval;
pub mod fields;
pub mod pages;
pub mod query;
pub mod server;
pub mod view;
pub mod web;

pub use error::ConsoleError;
pub use server::{Console, ConsoleOptions, bind};
