fn main() {
    println!("yurt {}", yurt::version::VERSION);
}
