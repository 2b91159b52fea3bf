//! Integrations: DNS, monitoring, puppet (filled in by the integrations work).
