"""Writes a throw-away PKI for the TLS tests into DIR (made at test time).

usage: make_certs.py DIR
  ca.pem                  the test CA the client is told to trust
  good.pem / good.key     localhost + 127.0.0.1, signed by the CA
  expired.pem / .key      localhost, signed by the CA, expired yesterday
  wronghost.pem / .key    wrong.example only, signed by the CA
  unknownca.pem / .key    localhost, signed by a CA the client does not know
"""
import datetime
import ipaddress
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

out = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn):
    k = key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(cn)).issuer_name(name(cn)).public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(k, hashes.SHA256())
    )
    return k, cert


def leaf(ca_key, ca_cert, names, ips, not_before, not_after):
    k = key()
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(names[0])).issuer_name(ca_cert.subject).public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return k, cert


def write(stem, k, cert):
    with open(f"{out}/{stem}.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    if k is not None:
        with open(f"{out}/{stem}.key", "wb") as f:
            f.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


ca_key, ca = make_ca("wshostd test CA")
write("ca", None, ca)
day = datetime.timedelta(days=1)
write("good", *leaf(ca_key, ca, ["localhost"], ["127.0.0.1"], now - day, now + 30 * day))
write("expired", *leaf(ca_key, ca, ["localhost"], ["127.0.0.1"], now - 30 * day, now - day))
write("wronghost", *leaf(ca_key, ca, ["wrong.example"], [], now - day, now + 30 * day))
other_key, other = make_ca("some other CA")
write("unknownca", *leaf(other_key, other, ["localhost"], ["127.0.0.1"], now - day, now + 30 * day))
