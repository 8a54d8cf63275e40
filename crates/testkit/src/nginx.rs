//! nginx from the distribution, as a reference implementation in
//! differential tests: started in the foreground with its own directory
//! for its pid, logs and temporary files, stopped when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{eventually, free_addr};

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    /// The address its one server listens on.
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx with `http` as the body of its `http` block, in which
    /// `{listen}` is replaced by the address to listen on; returns once it
    /// accepts connections. Panics when nginx is missing or does not come
    /// up within 5 s.
    pub async fn start(http: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let addr = free_addr();
        let p = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {p}/nginx.pid; error_log {p}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {p}/body; proxy_temp_path {p}/proxy; fastcgi_temp_path {p}/fcgi;
  uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;
{}
}}
",
            http.replace("{listen}", &addr.to_string())
        );
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).expect("writing nginx.conf");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&file)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is installed (apt-get install nginx)");
        eventually(Duration::from_secs(5), "nginx listens", || async {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await;
        Self {
            addr,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
