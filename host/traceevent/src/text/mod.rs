//! Text out of trace data: [`ShortText`] for pieces appended over and over, and [`report`],
//! the lines of `trace-cmd report`.

pub mod report;
mod short;

pub use short::ShortText;
