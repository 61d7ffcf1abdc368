#[derive(Default)]
struct App;

#[hearth_sdk::app(persist = "never")]
impl App {
    #[local]
    #[publish(room = "room/{room_id}", action = "created")]
    fn post(&mut self, room: String) -> String {
        room
    }
}

fn main() {}
