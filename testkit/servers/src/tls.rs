//! Throw-away certificates for TLS tests, generated with rcgen.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A test CA, a server certificate and a client certificate signed by it, and a second, unrelated CA.
///
/// The server certificate is valid for exactly [`TestCertificates::SERVER_NAMES`]: a client that trusts
/// [`ca_cert_pem`](Self::ca_cert_pem) and verifies host names accepts the server under those names only. A client
/// that trusts [`wrong_ca_cert_pem`](Self::wrong_ca_cert_pem) instead must reject it (unknown issuer).
/// All keys are ECDSA P-256, fresh on every [`generate`](Self::generate); nothing is cached or reused across runs.
#[derive(Clone)]
pub struct TestCertificates {
    ca_cert_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
    wrong_ca_cert_pem: String,
}

impl TestCertificates {
    /// The names the server certificate is valid for (subject alternative names): DNS `localhost`, IP `127.0.0.1`
    /// and IP `::1`. Anything else (`127.0.0.2`, `not-the-server.invalid`) is a name mismatch.
    pub const SERVER_NAMES: &'static [&'static str] = &["localhost", "127.0.0.1", "::1"];

    /// Generates a CA, a server certificate for [`SERVER_NAMES`](Self::SERVER_NAMES) and a client certificate
    /// signed by it, and an unrelated second CA.
    ///
    /// # Panics
    ///
    /// If rcgen fails to generate a key or certificate (it does not with these fixed parameters).
    pub fn generate() -> Self {
        let (ca_cert_pem, ca_issuer) = new_ca("cpc-testkit test CA");
        let (wrong_ca_cert_pem, _) = new_ca("cpc-testkit unrelated CA");

        let names: Vec<String> = Self::SERVER_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let (server_cert, server_key) = leaf(&ca_issuer, names, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client_cert, client_key) =
            leaf(&ca_issuer, Vec::new(), "cpc-testkit client", ExtendedKeyUsagePurpose::ClientAuth);

        TestCertificates {
            ca_cert_pem,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            wrong_ca_cert_pem,
        }
    }

    /// The CA certificate (PEM) that signed the server certificate: the one clients must trust.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The server certificate (PEM), signed by the CA.
    pub fn server_cert_pem(&self) -> &str {
        &self.server_cert_pem
    }

    /// The server's private key (PKCS#8 PEM).
    pub fn server_key_pem(&self) -> &str {
        &self.server_key_pem
    }

    /// A client certificate (PEM) signed by the CA, for the `clientAuth` usage only: what a server that checks
    /// its clients accepts. Redis Cluster nodes present it to each other, since the TLS cluster bus always checks
    /// the connecting node's certificate (and the server certificate is for `serverAuth` only).
    pub fn client_cert_pem(&self) -> &str {
        &self.client_cert_pem
    }

    /// The client certificate's private key (PKCS#8 PEM).
    pub fn client_key_pem(&self) -> &str {
        &self.client_key_pem
    }

    /// A second, unrelated CA certificate (PEM): a client that trusts only this one must reject the server.
    pub fn wrong_ca_cert_pem(&self) -> &str {
        &self.wrong_ca_cert_pem
    }
}

impl std::fmt::Debug for TestCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificates")
            .field("server_names", &Self::SERVER_NAMES)
            .field("server_key_pem", &"<redacted>")
            .field("client_key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A self-signed CA: its PEM and an issuer that signs with it.
fn new_ca(common_name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("empty SAN list");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "cpc-testkit");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("generate a CA key");
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `names` (its subject alternative names) and `purpose`, signed by `issuer`, and its key.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    names: Vec<String>,
    common_name: &str,
    purpose: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(names).expect("valid subject alternative names");
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "cpc-testkit");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![purpose];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("generate a key");
    let cert = params.signed_by(&key, issuer).expect("sign a certificate");
    (cert, key)
}
