#[derive(Default)]
struct App {
    n: u8,
}

#[hearth_sdk::app]
impl App {
    #[local]
    fn get(&self) -> u8 {
        self.n
    }
}

fn main() {}
