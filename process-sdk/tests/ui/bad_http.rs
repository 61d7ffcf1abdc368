#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[http(method = "FETCH", path = "/x")]
    fn get(&self) -> u8 {
        1
    }
}

fn main() {}
