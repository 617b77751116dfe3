use super::*;

const MIN: Duration = Duration::from_secs(10);
const MAX: Duration = Duration::from_secs(600);

use crate::state::test_update as update;
fn running(task: &str, uuid: u8) -> StatusUpdate {
    update("F", task, TaskState::TaskRunning, uuid)
}

/// The uuid byte of each update, to compare sequences briefly.
fn uuids<'a>(updates: impl IntoIterator<Item = &'a StatusUpdate>) -> Vec<u8> {
    updates
        .into_iter()
        .map(|u| u.uuid.as_ref().unwrap()[0])
        .collect()
}

fn resumed(now: Instant) -> StatusUpdateManager {
    let mut m = StatusUpdateManager::new(MIN, MAX);
    assert!(m.resume(now).is_empty());
    m
}

#[test]
fn starts_paused_and_sends_on_resume() {
    let now = Instant::now();
    let mut m = StatusUpdateManager::new(MIN, MAX);
    assert!(m.is_paused());
    assert_eq!(m.update(running("t", 1), None, now).unwrap(), None);
    assert_eq!(m.next_deadline(), None);
    assert_eq!(uuids(&m.resume(now)), [1]);
    assert_eq!(m.next_deadline(), Some(now + MIN));
}

#[test]
fn updates_of_one_task_go_one_at_a_time_in_order() {
    let now = Instant::now();
    let mut m = resumed(now);
    let first = m.update(running("t", 1), None, now).unwrap().unwrap();
    assert_eq!(uuids([&first]), [1]);
    assert_eq!(m.update(running("t", 2), None, now).unwrap(), None);
    assert_eq!(m.update(running("t", 3), None, now).unwrap(), None);
    assert_eq!(uuids(m.pending("F", "t")), [1, 2, 3]);

    let ack = m.acknowledge("F", "t", &[1; 16], now).unwrap();
    assert_eq!(uuids(&ack.next), [2]);
    assert!(!ack.terminal);
    assert_eq!(uuids([&ack.acknowledged]), [1]);
    let ack = m.acknowledge("F", "t", &[2; 16], now).unwrap();
    assert_eq!(uuids(&ack.next), [3]);
    let ack = m.acknowledge("F", "t", &[3; 16], now).unwrap();
    assert_eq!(ack.next, None);
    assert!(m.pending("F", "t").is_empty());
    assert_eq!(m.next_deadline(), None);
}

#[test]
fn tasks_are_independent() {
    let now = Instant::now();
    let mut m = resumed(now);
    assert!(m.update(running("a", 1), None, now).unwrap().is_some());
    assert!(m.update(running("b", 2), None, now).unwrap().is_some());
    assert!(m.update(running("a", 3), None, now).unwrap().is_none());
    let ack = m.acknowledge("F", "b", &[2; 16], now).unwrap();
    assert_eq!(ack.next, None);
    assert_eq!(uuids(m.pending("F", "a")), [1, 3]);
    // The same task id in another framework is another stream.
    let other = update("G", "a", TaskState::TaskRunning, 4);
    assert!(m.update(other, None, now).unwrap().is_some());
}

#[test]
fn duplicate_uuids_are_ignored() {
    let now = Instant::now();
    let mut m = resumed(now);
    assert!(m.update(running("t", 1), None, now).unwrap().is_some());
    assert_eq!(m.update(running("t", 1), None, now).unwrap(), None);
    assert_eq!(uuids(m.pending("F", "t")), [1]);
    m.acknowledge("F", "t", &[1; 16], now).unwrap();
    // Already acknowledged: still a duplicate, never sent again.
    assert_eq!(m.update(running("t", 1), None, now).unwrap(), None);
    assert!(m.pending("F", "t").is_empty());
}

#[test]
fn acknowledgements_must_match_the_head() {
    let now = Instant::now();
    let mut m = resumed(now);
    m.update(running("t", 1), None, now).unwrap();
    m.update(running("t", 2), None, now).unwrap();
    let err = m.acknowledge("F", "t", &[2; 16], now).unwrap_err();
    assert!(matches!(err, StatusError::UnexpectedAck { .. }), "{err}");
    assert!(err.to_string().contains("task t"), "{err}");
    assert!(
        err.to_string()
            .contains("01010101-0101-0101-0101-010101010101"),
        "{err}"
    );
    assert_eq!(uuids(m.pending("F", "t")), [1, 2]);

    m.acknowledge("F", "t", &[1; 16], now).unwrap();
    let err = m.acknowledge("F", "t", &[1; 16], now).unwrap_err();
    assert!(matches!(err, StatusError::DuplicateAck { .. }), "{err}");
    let err = m.acknowledge("F", "nope", &[1; 16], now).unwrap_err();
    assert!(matches!(err, StatusError::UnknownStream { .. }), "{err}");
}

#[test]
fn terminal_acknowledgement_closes_the_stream() {
    let now = Instant::now();
    let mut m = resumed(now);
    m.update(running("t", 1), None, now).unwrap();
    m.update(update("F", "t", TaskState::TaskFinished, 2), None, now)
        .unwrap();
    let err = m.update(running("t", 3), None, now).unwrap_err();
    assert!(matches!(err, StatusError::AfterTerminal { .. }), "{err}");
    assert!(err.to_string().contains("task t of framework F"), "{err}");

    let ack = m.acknowledge("F", "t", &[1; 16], now).unwrap();
    assert!(!ack.terminal);
    let ack = m.acknowledge("F", "t", &[2; 16], now).unwrap();
    assert!(ack.terminal);
    assert_eq!(ack.next, None);
    assert_eq!(
        ack.acknowledged.status.state,
        TaskState::TaskFinished as i32
    );
    let err = m.acknowledge("F", "t", &[2; 16], now).unwrap_err();
    assert!(matches!(err, StatusError::UnknownStream { .. }), "{err}");
}

#[test]
fn sent_updates_carry_the_latest_state_and_the_uuid_in_the_status() {
    let now = Instant::now();
    let mut m = resumed(now);
    let sent = m
        .update(update("F", "t", TaskState::TaskStarting, 1), None, now)
        .unwrap()
        .unwrap();
    assert_eq!(sent.latest_state, Some(TaskState::TaskStarting as i32));
    assert_eq!(sent.status.uuid, Some(vec![1; 16]));
    m.update(running("t", 2), None, now).unwrap();
    let resent = m.due(now + MIN);
    assert_eq!(resent[0].status.state, TaskState::TaskStarting as i32);
    assert_eq!(resent[0].latest_state, Some(TaskState::TaskRunning as i32));
    // What `pending` shows is the update as received.
    assert_eq!(m.pending("F", "t")[0].latest_state, None);
}

#[test]
fn pause_stops_sending_and_resume_resends_every_head_in_order() {
    let t0 = Instant::now();
    let mut m = resumed(t0);
    m.update(running("b", 1), None, t0).unwrap();
    m.update(running("a", 2), None, t0).unwrap();
    m.update(running("b", 3), None, t0).unwrap();
    m.pause();
    assert_eq!(m.next_deadline(), None);
    assert!(m.due(t0 + MAX * 10).is_empty());
    assert_eq!(m.update(running("c", 4), None, t0).unwrap(), None);
    // An acknowledgement while paused sends nothing.
    let ack = m.acknowledge("F", "b", &[1; 16], t0).unwrap();
    assert_eq!(ack.next, None);

    let t1 = t0 + Duration::from_secs(1000);
    assert_eq!(uuids(&m.resume(t1)), [3, 2, 4]);
    assert_eq!(m.next_deadline(), Some(t1 + MIN));
}

#[test]
fn retries_back_off_exponentially_up_to_the_maximum() {
    let t0 = Instant::now();
    let mut m = resumed(t0);
    m.update(running("t", 1), None, t0).unwrap();
    assert_eq!(m.next_deadline(), Some(t0 + MIN));
    assert!(m.due(t0 + MIN - Duration::from_millis(1)).is_empty());

    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        now = m.next_deadline().unwrap();
        assert_eq!(uuids(&m.due(now)), [1]);
        gaps.push((m.next_deadline().unwrap() - now).as_secs());
    }
    assert_eq!(gaps, [20, 40, 80, 160, 320, 600, 600, 600]);

    // After a pause the interval starts over.
    m.pause();
    assert_eq!(uuids(&m.resume(now)), [1]);
    assert_eq!(m.next_deadline(), Some(now + MIN));
    // And after an acknowledgement, the next update starts at the minimum.
    m.update(running("t", 2), None, now).unwrap();
    let later = now + Duration::from_secs(5);
    let ack = m.acknowledge("F", "t", &[1; 16], later).unwrap();
    assert_eq!(uuids(&ack.next), [2]);
    assert_eq!(m.next_deadline(), Some(later + MIN));
}

#[test]
fn each_stream_has_its_own_timer() {
    let t0 = Instant::now();
    let mut m = resumed(t0);
    m.update(running("a", 1), None, t0).unwrap();
    let t1 = t0 + Duration::from_secs(4);
    m.update(running("b", 2), None, t1).unwrap();
    assert_eq!(uuids(&m.due(t0 + MIN)), [1]);
    assert_eq!(m.next_deadline(), Some(t1 + MIN));
    assert_eq!(uuids(&m.due(t1 + MIN)), [2]);
}

#[test]
fn cleanup_framework_drops_its_streams() {
    let now = Instant::now();
    let mut m = resumed(now);
    m.update(running("a", 1), None, now).unwrap();
    m.update(update("G", "a", TaskState::TaskRunning, 2), None, now)
        .unwrap();
    m.cleanup_framework("F");
    assert!(m.pending("F", "a").is_empty());
    assert_eq!(uuids(m.pending("G", "a")), [2]);
    assert_eq!(uuids(&m.resume(now)), [2]);
}

#[test]
fn malformed_updates_are_refused() {
    let now = Instant::now();
    let mut m = resumed(now);
    let mut u = running("t", 1);
    u.uuid = None;
    let err = m.update(u, None, now).unwrap_err();
    assert!(matches!(err, StatusError::MissingUuid { .. }), "{err}");
    let err = m.update(running("", 1), None, now).unwrap_err();
    assert!(matches!(err, StatusError::Malformed(_)), "{err}");
}

#[test]
fn logged_updates_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("tasks/t/task.updates");
    let now = Instant::now();
    {
        let mut m = resumed(now);
        m.update(
            update("F", "t", TaskState::TaskStarting, 1),
            Some(&log),
            now,
        )
        .unwrap();
        m.update(running("t", 2), Some(&log), now).unwrap();
        m.update(
            update("F", "t", TaskState::TaskFinished, 3),
            Some(&log),
            now,
        )
        .unwrap();
        m.acknowledge("F", "t", &[1; 16], now).unwrap();
        // Mixing logged and unlogged updates of one task is refused.
        let err = m.update(running("t", 9), None, now).unwrap_err();
        assert!(
            matches!(err, StatusError::CheckpointMismatch { .. }),
            "{err}"
        );
    }

    let replay = || crate::state::updates::replay(&log).unwrap();
    let recover = |m: &mut StatusUpdateManager| {
        let r = replay();
        m.recover("F", "t", &log, &r.updates, &r.acks)
    };
    let mut m = StatusUpdateManager::new(MIN, MAX);
    assert_eq!(recover(&mut m).unwrap(), 2);
    assert_eq!(uuids(m.pending("F", "t")), [2, 3]);
    let sent = m.resume(now);
    assert_eq!(uuids(&sent), [2]);
    assert_eq!(sent[0].latest_state, Some(TaskState::TaskFinished as i32));
    // Replayed uuids are still known: a retried update is a duplicate.
    assert_eq!(m.update(running("t", 1), Some(&log), now).unwrap(), None);
    let err = recover(&mut m).unwrap_err();
    assert!(matches!(err, StatusError::StreamExists { .. }), "{err}");

    // The acknowledgements go on being logged.
    m.acknowledge("F", "t", &[2; 16], now).unwrap();
    assert_eq!(replay().acks.len(), 2);
    let ack = m.acknowledge("F", "t", &[3; 16], now).unwrap();
    assert!(ack.terminal);

    // Fully acknowledged up to the terminal update: nothing to keep.
    let mut m = StatusUpdateManager::new(MIN, MAX);
    assert_eq!(recover(&mut m).unwrap(), 0);
    assert!(m.pending("F", "t").is_empty());
    assert!(m.resume(now).is_empty());
    let err = m.acknowledge("F", "t", &[3; 16], now).unwrap_err();
    assert!(matches!(err, StatusError::UnknownStream { .. }), "{err}");
    // No updates, no stream (and no file created).
    let missing = dir.path().join("tasks/u/task.updates");
    let none = HashSet::new();
    assert_eq!(m.recover("F", "u", &missing, &[], &none).unwrap(), 0);
    assert!(!missing.exists());
}

#[test]
fn only_a_stream_holding_nothing_is_forgotten_for_an_unlogged_update() {
    let now = Instant::now();
    let mut m = resumed(now);
    assert!(m.forget_empty("F", "none"));
    m.update(running("t", 1), None, now).unwrap();
    assert!(!m.forget_empty("F", "t"));
    assert_eq!(uuids(m.pending("F", "t")), [1]);
}
