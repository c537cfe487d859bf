pub mod lightsail;
