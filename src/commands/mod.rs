//! One module per subcommand: [`stage`] (the main job, also observe mode), [`analyze`], [`watch`]
//! and [`prune`].

pub mod analyze;
pub mod help;
pub mod prune;
pub mod runtime;
pub mod stage;
pub mod watch;
