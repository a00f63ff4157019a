//! The control plane's certificates: one CA, a serving certificate for the API server, client certificates for
//! the administrator and the controller manager, and the service-account signing key. All X.509 v3 with the
//! extensions rustls insists on.

use std::{fs, net::Ipv4Addr, path::Path};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").finish_non_exhaustive()
    }
}

/// Every key and certificate the control plane needs.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: CertPair,
    pub apiserver: CertPair,
    pub admin: CertPair,
    pub controller_manager: CertPair,
    /// Signs service-account tokens (PKCS#8).
    pub service_account_key_pem: String,
    /// Verifies them (SPKI): the 1.20 API server reads no public key out of a PKCS#8 private key.
    pub service_account_public_pem: String,
}

fn distinguished_name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        name.push(DnType::OrganizationName, organization);
    }
    name
}

fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    group: Option<&str>,
) -> Result<CertPair, rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(user, group);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

impl Pki {
    pub fn generate() -> Result<Self, rcgen::Error> {
        Self::generate_for(Ipv4Addr::LOCALHOST)
    }

    /// Like [`Pki::generate`], for an API server that also listens on `address`.
    pub fn generate_for(address: Ipv4Addr) -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = distinguished_name("store-platform-test-ca", None);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = CertPair {
            cert_pem: ca_cert.pem(),
            key_pem: ca_key.serialize_pem(),
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut server_params = CertificateParams::new(vec![
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default.svc".to_owned(),
        ])?;
        server_params.distinguished_name = distinguished_name("kube-apiserver", None);
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        if address != Ipv4Addr::LOCALHOST {
            server_params
                .subject_alt_names
                .push(SanType::IpAddress(address.into()));
        }
        // The first address of the service CIDR: in-cluster clients reach the API server there.
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::new(10, 0, 0, 1).into()));
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server_params.signed_by(&server_key, &issuer)?;
        let service_account_key = KeyPair::generate()?;

        Ok(Self {
            apiserver: CertPair {
                cert_pem: server_cert.pem(),
                key_pem: server_key.serialize_pem(),
            },
            admin: client_cert(&issuer, "store-platform-admin", Some("system:masters"))?,
            controller_manager: client_cert(
                &issuer,
                "system:kube-controller-manager",
                Some("system:masters"),
            )?,
            service_account_key_pem: service_account_key.serialize_pem(),
            service_account_public_pem: service_account_key.public_key_pem(),
            ca,
        })
    }

    /// Writes the files the control-plane processes read.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        fs::write(dir.join("ca.crt"), &self.ca.cert_pem)?;
        fs::write(dir.join("ca.key"), &self.ca.key_pem)?;
        fs::write(dir.join("apiserver.crt"), &self.apiserver.cert_pem)?;
        fs::write(dir.join("apiserver.key"), &self.apiserver.key_pem)?;
        fs::write(
            dir.join("service-account.key"),
            &self.service_account_key_pem,
        )?;
        fs::write(
            dir.join("service-account.pub"),
            &self.service_account_public_pem,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_certificate_is_pem_and_distinct() {
        let pki = Pki::generate().expect("generate");
        for pair in [&pki.ca, &pki.apiserver, &pki.admin, &pki.controller_manager] {
            assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(pair.key_pem.contains("PRIVATE KEY-----"));
        }
        assert_ne!(pki.admin.cert_pem, pki.controller_manager.cert_pem);
    }
}
