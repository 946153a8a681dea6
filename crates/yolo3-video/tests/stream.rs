//! Network streams through FFmpeg's own HTTP client, against a server in this process: an
//! MPEG-TS clip (made by the `ffmpeg` program that `scripts/setup.sh` installs, from its test
//! pattern source) served whole, served with a drop partway (the reader reopens the stream and
//! goes on where it was: the server sends the file from its start again, and no frame is
//! delivered twice), and dropped on every connection (the reader gives up after its reopens,
//! with an error that names the URL and says how often it tried).

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

use yolo3_video::{Source, VideoReader};

/// Frames of the clip.
const FRAMES: u64 = 40;

/// A 64x48 MPEG-2 clip of `FRAMES` frames at 10 frames/s in an MPEG transport stream (the
/// container live streams are sent in).
fn clip(dir: &Path) -> Vec<u8> {
    let path = dir.join("clip.ts");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=64x48:rate=10,trim=end_frame={FRAMES}"))
        .args(["-c:v", "mpeg2video", "-q:v", "2", "-f", "mpegts"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    std::fs::read(path).unwrap()
}

/// Serves `body` over HTTP, one connection per entry of `sent`: that many of its bytes (all
/// announced by Content-Length), then the connection is closed. After the last entry the
/// server stops listening, so a further connection is refused.
fn serve(body: Vec<u8>, sent: Vec<usize>) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/live.ts", listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        for bytes in sent {
            let (mut connection, _) = listener.accept().unwrap();
            let mut request = BufReader::new(connection.try_clone().unwrap());
            let mut line = String::new();
            while request.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            // The client may hang up first (the last connection of a failing stream).
            let _ = connection.write_all(head.as_bytes());
            let _ = connection.write_all(&body[..bytes.min(body.len())]);
        }
    });
    (url, server)
}

/// Frames read from `url` until the end or an error.
fn read_all(url: &str) -> (u64, Option<yolo3_video::VideoError>) {
    let mut reader = VideoReader::open(&Source::Stream(url.to_owned())).unwrap();
    assert_eq!(reader.frame_rate(), Some(10.0));
    let mut frames = 0;
    let mut last_time = f64::NEG_INFINITY;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                assert_eq!(frame.index, frames, "frame numbers go on across reopens");
                assert_eq!(frame.image.dimensions(), (64, 48));
                assert!(frame.time > last_time, "time {} after {last_time}", frame.time);
                last_time = frame.time;
                frames += 1;
            }
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

#[test]
fn an_http_stream_is_read_whole_and_reopened_when_it_drops() {
    let tmp = tempfile::tempdir().unwrap();
    let body = clip(tmp.path());

    let (url, server) = serve(body.clone(), vec![usize::MAX]);
    let (frames, error) = read_all(&url);
    server.join().unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(frames, FRAMES);

    // Dropped after a bit more than half of the clip, then served whole: the frames of the
    // first connection, then the rest of the second's, each frame once.
    let (url, server) = serve(body.clone(), vec![body.len() * 3 / 5, usize::MAX]);
    let (frames, error) = read_all(&url);
    server.join().unwrap();
    assert!(error.is_none(), "{error:?}");
    assert_eq!(frames, FRAMES);

    // Dropped on every connection: the first one and three reopens, then an error.
    let part = body.len() * 3 / 5;
    let (url, server) = serve(body, vec![part; 4]);
    let (frames, error) = read_all(&url);
    server.join().unwrap();
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&url) && message.contains("reopened 3 times"), "{message:?}");
    // Every reopen sends the same first part again: nothing new after the first connection.
    assert!(frames > FRAMES / 2 && frames < FRAMES, "{frames} frames before giving up");
}

/// A server that answers a `.mp4` URL with an endless MP4 that never gets to a video: FFmpeg's
/// mov demuxer would look for its `moov` box forever; the reader gives up at its byte budget.
#[test]
fn endless_garbage_under_an_mp4_name_is_an_error_not_a_hang() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/x.mp4", listener.local_addr().unwrap().port());
    let server = std::thread::spawn(move || {
        // One connection, no Content-Length: the body ends when the client hangs up, or
        // after 1 GB (bounded, as every test server here is).
        let (mut connection, _) = listener.accept().unwrap();
        let mut request = BufReader::new(connection.try_clone().unwrap());
        let mut line = String::new();
        while request.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let _ = connection.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\r\n");
        // An MP4 file type box, then a media data box that says it is 1 TB long: the
        // demuxer reads through it, looking for the `moov` box after it (ffprobe reads at
        // over 1 GB/s this way, for as long as the server sends).
        let mut head = 24u32.to_be_bytes().to_vec();
        head.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
        head.extend_from_slice(&1u32.to_be_bytes());
        head.extend_from_slice(b"mdat");
        head.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let _ = connection.write_all(&head);
        let chunk = vec![0u8; 1 << 16];
        for _ in 0..(1 << 14) {
            if connection.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    let error = VideoReader::open(&Source::Stream(url.clone())).expect_err("not a video");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("64 MB read without a video frame"), "{message}: {error:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120), "{:?}", started.elapsed());
    server.join().unwrap();
}
