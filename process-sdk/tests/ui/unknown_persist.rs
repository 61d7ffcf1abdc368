#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "sometimes")]
impl App {
    #[local]
    fn get(&self) -> u8 {
        1
    }
}

fn main() {}
