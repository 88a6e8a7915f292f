//! traceevent
