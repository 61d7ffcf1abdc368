#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[local]
    async fn fetch(&self, key: String) -> String {
        key
    }
}

fn main() {}
