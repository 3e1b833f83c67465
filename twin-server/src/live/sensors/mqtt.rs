//! MQTT ingest (`serve --mqtt mqtt://host:port`): subscribes to
//! `$share/citytwin/citytwin/datastreams/+/observations` (an MQTT shared subscription: the broker
//! hands each message to one member of the `citytwin` group, so replicas do not double-ingest),
//! QoS 1. Payload: one observation `{"result": …, "phenomenonTime": …}` (the STA Observation
//! shape) or an array of them. Messages are grouped into batches for [`super::ingest`].
//! Malformed topics/payloads are logged and counted (`citytwin_mqtt_malformed_total`), never fatal;
//! a lost connection is retried with exponential backoff (250 ms … 5 s) and the subscription is
//! renewed on every CONNACK.

use super::ObsIn;
use crate::live::LiveState;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub const TOPIC_FILTER: &str = "$share/citytwin/citytwin/datastreams/+/observations";

/// `mqtt://[USER:PASSWORD@]host:port` (port defaults to 1883) → (host, port, credentials).
pub fn parse_url_auth(s: &str) -> Result<(String, u16, Option<(String, String)>), String> {
    let shown = mask(s);
    let rest = s.strip_prefix("mqtt://").or_else(|| s.strip_prefix("tcp://")).ok_or_else(|| format!("--mqtt {shown}: expected mqtt://[USER:PASSWORD@]HOST[:PORT]"))?;
    let (cred, rest) = match rest.rsplit_once('@') {
        Some((c, r)) => {
            let (u, p) = c.split_once(':').ok_or_else(|| format!("--mqtt {shown}: credentials must be USER:PASSWORD"))?;
            if u.is_empty() {
                return Err(format!("--mqtt {shown}: empty user name"));
            }
            (Some((u.to_string(), p.to_string())), r)
        }
        None => (None, rest),
    };
    let (h, p) = parse_host_port(rest).map_err(|e| format!("--mqtt {shown}: {e}"))?;
    Ok((h, p, cred))
}

/// The URL with its password replaced by `***` (for logs and errors).
pub fn mask(s: &str) -> String {
    match (s.find("://"), s.rfind('@')) {
        (Some(a), Some(at)) if at > a => match s[a + 3..at].split_once(':') {
            Some((u, _)) => format!("{}{u}:***{}", &s[..a + 3], &s[at..]),
            None => s.to_string(),
        },
        _ => s.to_string(),
    }
}

/// `USER:PASSWORD` on the first line of a file (`serve --mqtt-credentials`).
pub fn read_credentials(f: &std::path::Path) -> Result<(String, String), String> {
    let t = std::fs::read_to_string(f).map_err(|e| format!("--mqtt-credentials {}: {e}", f.display()))?;
    let line = t.lines().next().unwrap_or("").trim();
    match line.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err(format!("--mqtt-credentials {}: the first line must be USER:PASSWORD", f.display())),
    }
}

/// `mqtt://host:port` (port defaults to 1883) → (host, port).
#[cfg(test)]
pub fn parse_url(s: &str) -> Result<(String, u16), String> {
    parse_url_auth(s).map(|(h, p, _)| (h, p))
}

fn parse_host_port(rest: &str) -> Result<(String, u16), String> {
    let s = rest;
    let rest = rest.trim_end_matches('/');
    let (h, p) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| format!("port '{p}': {e}"))?),
        None => (rest, 1883),
    };
    if h.is_empty() {
        return Err(format!("empty host in '{s}'"));
    }
    Ok((h.to_string(), p))
}

/// Parses one message into observations; the error names what is wrong.
pub fn parse_message(topic: &str, payload: &[u8]) -> Result<Vec<ObsIn>, String> {
    twin_protocol::payload::mqtt_message(topic, payload)
}

/// Starts the client and the batching ingest task.
pub fn spawn(live: LiveState, url: &str) -> Result<(), String> {
    let (host, port, mut cred) = parse_url_auth(url)?;
    if let Some(f) = &live.opts.mqtt_credentials {
        cred = Some(read_credentials(f)?);
    }
    let client_id = format!("citytwin-{}-{}", std::process::id(), crate::live::now_ms() % 1_000_000);
    let mut o = MqttOptions::new(client_id, host.clone(), port);
    if let Some((u, p)) = cred {
        // The server's own subscriber credential (the broker's ACL lets it read the observation
        // topics only); devices publish with their own credentials (README, MQTT ACLs).
        o.set_credentials(u, p);
    }
    o.set_keep_alive(Duration::from_secs(5));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(o, 10_000);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<ObsIn>>(10_000);
    let s = live.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = Duration::from_millis(250);
                    s.sensors.counters.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                    s.sensors.counters.mqtt_connected.store(1, Ordering::Relaxed);
                    tracing::info!(broker = %format!("{host}:{port}"), "mqtt: connected, subscribing {TOPIC_FILTER}");
                    if let Err(e) = client.try_subscribe(TOPIC_FILTER, QoS::AtLeastOnce) {
                        tracing::error!("mqtt: subscribe: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    s.sensors.counters.mqtt_messages.fetch_add(1, Ordering::Relaxed);
                    match parse_message(&p.topic, &p.payload) {
                        Ok(obs) => {
                            if tx.send(obs).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            s.sensors.counters.mqtt_malformed.fetch_add(1, Ordering::Relaxed);
                            s.sensors.reject("mqtt", "mqtt_malformed");
                            tracing::warn!("mqtt: malformed message dropped: {e}");
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    s.sensors.counters.mqtt_connected.store(0, Ordering::Relaxed);
                    tracing::warn!(retry_ms = backoff.as_millis() as u64, "mqtt: connection to {host}:{port} lost or refused: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut total = 0u64;
        let mut progress = std::time::Instant::now();
        while let Some(first) = rx.recv().await {
            // Linger up to 20 ms (or 5,000 observations) so that a commit carries many messages:
            // a commit per message would bound the rate by the store's commit latency.
            let mut batch = first;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
            while batch.len() < 5_000 {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(more)) => batch.extend(more),
                        _ => break,
                    },
                }
            }
            while batch.len() < 20_000 {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let n = batch.len();
            match super::ingest(&live, batch, "mqtt").await {
                Ok(rep) => {
                    for e in rep.errors.iter().take(3) {
                        tracing::warn!("mqtt: observation rejected: {}", e.message);
                    }
                    total += rep.accepted as u64;
                }
                Err(e) => tracing::error!(observations = n, "mqtt: batch not stored: {}", e.message),
            }
            if progress.elapsed() > Duration::from_secs(10) {
                tracing::info!(stored = total, "mqtt: observations stored so far");
                progress = std::time::Instant::now();
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_messages() {
        assert_eq!(parse_url("mqtt://127.0.0.1:1884").unwrap(), ("127.0.0.1".into(), 1884));
        assert_eq!(parse_url("mqtt://broker").unwrap(), ("broker".into(), 1883));
        assert!(parse_url("http://x").is_err());
        assert_eq!(parse_url_auth("mqtt://srv:p@ss:w@10.0.0.1:1885").unwrap(), ("10.0.0.1".into(), 1885, Some(("srv".into(), "p@ss:w".into()))));
        assert!(parse_url_auth("mqtt://nopass@h").unwrap_err().contains("USER:PASSWORD"));
        assert_eq!(mask("mqtt://srv:secret@h:1"), "mqtt://srv:***@h:1");
        assert!(!parse_url_auth("mqtt://srv:secret@:1").unwrap_err().contains("secret"));
        let o = parse_message("citytwin/datastreams/7/observations", br#"{"result": 1.5, "phenomenonTime": "2026-11-22T00:00:00Z"}"#).unwrap();
        assert_eq!((o[0].datastream, o[0].phenomenon_ms), (7, Some(1_795_305_600_000)));
        assert_eq!(parse_message("citytwin/datastreams/7/observations", br#"[{"result": 1}, {"result": 2}]"#).unwrap().len(), 2);
        assert!(parse_message("citytwin/datastreams/x/observations", b"{}").unwrap_err().contains("topic"));
        assert!(parse_message("citytwin/datastreams/7/observations", b"{not json").unwrap_err().contains("not JSON"));
        assert!(parse_message("citytwin/datastreams/7/observations", br#"{"value": 1}"#).unwrap_err().contains("'result'"));
    }
}
