//! What the person decides: [`conflicts`], the inbox of items changed on both sides (keep a,
//! b or both, or pick per field), and [`duplicates`], likely duplicate contacts merged with
//! the same per-field choice. Both run as durable workflows through the run's `run_here`.

pub mod conflicts;
pub mod duplicates;
