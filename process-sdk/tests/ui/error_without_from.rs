#[derive(Default)]
struct App;

struct MyError;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[local]
    fn get(&self) -> Result<u8, MyError> {
        Err(MyError)
    }
}

fn main() {}
