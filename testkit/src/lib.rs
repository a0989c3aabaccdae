//! Test support — not production code; a dev-dependency of the agent, the collector crates and
//! the end-to-end tests.
//!
//! * [`reference`] — a user-space parser with exactly the kernel's classification rules: the
//!   specification the XDP program is tested against.
//! * [`frame`] — builds Ethernet frames (VLANs, IPv4 options, IPv6 extension headers, TCP
//!   options, payloads).
//! * [`testrun`] — runs the real XDP object on frames through BPF_PROG_TEST_RUN.
//! * [`conformance`] — the crafted and seeded-fuzz corpus and its kernel-vs-reference checks,
//!   shared by the XDP tests and the older-kernel VM test.
//! * [`gate`] — the one skip-or-fail gate of privileged tests.
//! * [`synthetic`] — seeded synthetic traffic for the benchmarks.
//! * [`netflow`] — nfdump's `nfcapd`, the NetFlow reference collector.
pub mod conformance;
pub mod frame;
pub mod gate;
pub mod netflow;
pub mod reference;
pub mod synthetic;
pub mod testrun;
