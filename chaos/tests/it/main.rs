//! confab-chaos tests: the checker on known histories, the proxy's link
//! modes, the schedule, the pipeline against deliberately broken targets,
//! and the chaos run against real router processes.

mod broken;
mod chaos;
mod checker;
mod proxy;
mod schedule;
