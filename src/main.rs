fn main() {
    println!("lightsail-gui-operator");
}
