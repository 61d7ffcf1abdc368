#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[local]
    fn get(&self, key: &str) -> String {
        key.to_string()
    }
}

fn main() {}
