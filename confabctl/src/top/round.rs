//! What one round of scraping gathered: every listed process's answer.

use std::time::Instant;

use super::http::GetError;
use super::samples::Samples;
use super::sd::Target;

/// One process's scrape: when it began and what it answered.
#[derive(Debug)]
pub struct Scrape {
    pub at: Instant,
    pub samples: Result<Samples, GetError>,
}

/// Every listed process scraped once, at about the same time.
#[derive(Debug)]
pub struct Round {
    pub at: Instant,
    pub scrapes: Vec<(Target, Scrape)>,
}
