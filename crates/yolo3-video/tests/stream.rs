//! Network streams through FFmpeg's own HTTP client, against a server in this process: an
//! MPEG-TS clip (made by the `ffmpeg` program that `scripts/setup.sh` installs, from its test
//! pattern source) served whole, served with a drop partway (the reader reopens the stream and
//! goes on), and dropped on every connection (the reader gives up after its reopens, with an
//! error that names the URL and says how often it tried).

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
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                assert_eq!(frame.index, frames, "frame numbers go on across reopens");
                assert_eq!(frame.image.dimensions(), (64, 48));
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
    // first connection, then all of the second's.
    let (url, server) = serve(body.clone(), vec![body.len() * 3 / 5, usize::MAX]);
    let (frames, error) = read_all(&url);
    server.join().unwrap();
    assert!(error.is_none(), "{error:?}");
    assert!(frames > FRAMES + FRAMES / 3 && frames < 2 * FRAMES, "{frames} frames");

    // Dropped on every connection: the first one and three reopens, then an error.
    let part = body.len() * 3 / 5;
    let (url, server) = serve(body, vec![part; 4]);
    let (frames, error) = read_all(&url);
    server.join().unwrap();
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&url) && message.contains("reopened 3 times"), "{message:?}");
    assert!(frames > 4 * FRAMES / 3, "{frames} frames before giving up");
}
