//! A fast upstream for load benchmarks: answers every request with a fixed
//! 1 KiB body. `cargo run --release --example upstream -- 127.0.0.1:18081`

use axum::Router;
use axum::routing::any;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let body: &'static [u8] = Box::leak(vec![b'x'; 1024].into_boxed_slice());
    let app = Router::new().fallback(any(move || async move { body }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("upstream listening on {addr}");
    axum::serve(listener, app).await
}
