//! The seed's first programs: a named function, an anonymous function, and a function in a
//! variable, each started with `go` and joined (a join point, not a sleep).

use gsched::go;

fn say_hello() {
    println!("hello");
}

fn main() {
    go(say_hello).join().unwrap();

    go(|| println!("hello")).join().unwrap();

    let say_hello = || println!("hello");
    go(say_hello).join().unwrap();
}
