#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[publish(room = "all")]
    fn lonely(&self) -> u8 {
        1
    }
}

fn main() {}
