//! One staging run: its id, the labels on everything it creates, and its engine connection.

use std::collections::HashMap;

use bollard::Docker;

use crate::staging::engine;

pub struct Run {
    /// Twelve hex digits: the io.airgap-check.run label.
    pub id: String,
    pub labels: HashMap<String, String>,
    pub docker: Docker,
}

impl Run {
    pub fn new(docker: Docker) -> Run {
        let id = engine::run_id();
        Run {
            labels: engine::labels(&id),
            id,
            docker,
        }
    }

    /// The name of what the run creates: `airgap-check-<id>`.
    pub fn name(&self) -> String {
        format!("airgap-check-{}", self.id)
    }
}
