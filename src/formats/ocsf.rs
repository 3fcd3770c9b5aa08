//! OCSF 1.8.0. Filled in by the OCSF change; until then the exporter's JSON.

use crate::event::LifecycleEvent;

pub fn encode(event: &LifecycleEvent, out: &mut Vec<u8>) {
    event.write_json_line(out);
    out.pop();
}
